package tables

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// sharedKey signs requests with an account key, by the Table service's Shared Key scheme
// (https://learn.microsoft.com/rest/api/storageservices/authorize-with-shared-key):
// StringToSign is VERB, Content-MD5, Content-Type, the date and the canonicalized resource,
// one a line.
type sharedKey struct {
	account string
	key     []byte
}

func newSharedKey(account, key string) (*sharedKey, error) {
	k, err := base64.StdEncoding.DecodeString(key)
	if err != nil || len(k) == 0 {
		// The decoder's message would quote the key.
		return nil, errors.New("account key is not base64")
	}
	return &sharedKey{account: account, key: k}, nil
}

// Do signs each try anew: a retry has a new date.
func (s *sharedKey) Do(req *policy.Request) (*http.Response, error) {
	r := req.Raw()
	date := time.Now().UTC().Format(http.TimeFormat)
	r.Header.Set("x-ms-date", date)
	r.Header.Set("Authorization", "SharedKey "+s.account+":"+s.sign(r.Method, r.Header.Get("Content-MD5"), r.Header.Get("Content-Type"), date, r.URL))
	return req.Next()
}

func (s *sharedKey) sign(verb, md5, contentType, date string, u *url.URL) string {
	var b strings.Builder
	b.WriteString(verb)
	b.WriteByte('\n')
	b.WriteString(md5)
	b.WriteByte('\n')
	b.WriteString(contentType)
	b.WriteByte('\n')
	b.WriteString(date)
	b.WriteByte('\n')
	b.WriteString(s.canonicalizedResource(u))
	h := hmac.New(sha256.New, s.key)
	h.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// canonicalizedResource is "/<account><path as sent>", plus "?comp=<value>" when the query
// has comp. A path-style URL (Azurite's http://host/devstoreaccount1/$batch) keeps the
// account in its path, so the account appears twice, as the service and the SDK expect.
func (s *sharedKey) canonicalizedResource(u *url.URL) string {
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	cr := "/" + s.account + p
	if comp := u.Query().Get("comp"); comp != "" {
		cr += "?comp=" + comp
	}
	return cr
}
