package wdl

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"math/big"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Encodings, URIs and the two non-deterministic functions (guid, rand).

func oneString(a args3) (string, error) {
	if a[0].k != kStr {
		return "", failf("expects its parameter to be a string, got %s", a[0].typeName())
	}
	return a[0].s, nil
}

func fnBase64(env *Env, a args3, _ int) (value, error) {
	s, err := oneString(a)
	if err != nil {
		return null, err
	}
	return strV(base64.StdEncoding.EncodeToString([]byte(s))), nil
}

func decodeBase64Text(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		// .NET's Convert.FromBase64String ignores white space and takes missing padding badly;
		// accept the unpadded form too, which Dataverse file columns sometimes carry.
		if b2, err2 := base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "=")); err2 == nil {
			return b2, nil
		}
		return nil, failf("cannot decode '%s' as base64", s)
	}
	return b, nil
}

func fnBase64ToString(env *Env, a args3, _ int) (value, error) {
	s, err := oneString(a)
	if err != nil {
		return null, err
	}
	b, err := decodeBase64Text(s)
	if err != nil {
		return null, err
	}
	return strV(strings.ToValidUTF8(string(b), "\uFFFD")), nil
}

// fnDataURI is dataUri(text): a text/plain UTF-8 data URI holding the text in base64.
func fnDataURI(env *Env, a args3, _ int) (value, error) {
	s, err := oneString(a)
	if err != nil {
		return null, err
	}
	return strV("data:text/plain;charset=utf-8;base64," + base64.StdEncoding.EncodeToString([]byte(s))), nil
}

// fnDataURIToString reads a data URI (RFC 2397: data:[<media type>][;base64],<data>).
func fnDataURIToString(env *Env, a args3, _ int) (value, error) {
	s, err := oneString(a)
	if err != nil {
		return null, err
	}
	if !strings.HasPrefix(strings.ToLower(s), "data:") {
		return null, failf("expects a data URI (data:...), got '%s'", s)
	}
	meta, data, ok := strings.Cut(s[len("data:"):], ",")
	if !ok {
		return null, failf("cannot read the data URI '%s': it has no ','", s)
	}
	if strings.HasSuffix(strings.ToLower(meta), ";base64") {
		b, err := decodeBase64Text(data)
		if err != nil {
			return null, err
		}
		return strV(strings.ToValidUTF8(string(b), "\uFFFD")), nil
	}
	return strV(unescapeData(data)), nil
}

// fnURIComponent escapes as .NET's Uri.EscapeDataString: everything but the RFC 3986
// unreserved characters, as UTF-8 bytes in upper-case hex.
func fnURIComponent(env *Env, a args3, _ int) (value, error) {
	s, err := oneString(a)
	if err != nil {
		return null, err
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'z') || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteString(strings.ToUpper(hex.EncodeToString([]byte{c})))
	}
	return strV(b.String()), nil
}

func fnURIComponentToString(env *Env, a args3, _ int) (value, error) {
	s, err := oneString(a)
	if err != nil {
		return null, err
	}
	return strV(unescapeData(s)), nil
}

// unescapeData is Uri.UnescapeDataString: %XX sequences decoded (as UTF-8), anything else, a
// malformed sequence included, left as it is.
func unescapeData(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var out []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s)+0 && i+2 <= len(s)-1 {
			if b, err := hex.DecodeString(s[i+1 : i+3]); err == nil {
				out = append(out, b[0])
				i += 2
				continue
			}
		}
		out = append(out, s[i])
	}
	if !utf8.Valid(out) {
		return strings.ToValidUTF8(string(out), "\uFFFD")
	}
	return string(out)
}

var defaultPorts = map[string]int64{"http": 80, "https": 443, "ftp": 21, "ws": 80, "wss": 443, "ldap": 389,
	"mailto": 25, "news": 119, "nntp": 119, "gopher": 70, "telnet": 23}

// uriPart reads a part of an absolute URI as .NET's System.Uri gives it.
func uriPart(part string) func(env *Env, a args3, n int) (value, error) {
	return func(env *Env, a args3, _ int) (value, error) {
		s, err := oneString(a)
		if err != nil {
			return null, err
		}
		u, err := url.Parse(strings.TrimSpace(s))
		if err != nil || u.Scheme == "" || (u.Host == "" && u.Opaque == "") {
			return null, failf("expects an absolute URI, got '%s'", s)
		}
		path := u.EscapedPath()
		if path == "" {
			path = "/"
		}
		query := ""
		if u.RawQuery != "" || u.ForceQuery {
			query = "?" + u.RawQuery
		}
		switch part {
		case "host":
			return strV(strings.ToLower(u.Hostname())), nil
		case "path":
			return strV(path), nil
		case "pathAndQuery":
			return strV(path + query), nil
		case "query":
			return strV(query), nil
		case "scheme":
			return strV(strings.ToLower(u.Scheme)), nil
		case "port":
			if p := u.Port(); p != "" {
				n, err := strconv.ParseInt(p, 10, 64)
				if err != nil || n > 65535 {
					return null, failf("expects an absolute URI, got '%s'", s)
				}
				return intV(n), nil
			}
			if p, ok := defaultPorts[strings.ToLower(u.Scheme)]; ok {
				return intV(p), nil
			}
			return intV(-1), nil
		}
		return null, nil
	}
}

// guidFormat checks guid()'s optional format: N, D, B, P or X, as .NET's Guid.ToString takes.
func guidFormat(v value) (byte, error) {
	if v.k != kStr {
		return 0, failf("expects its format to be a string, got %s", v.typeName())
	}
	switch v.s {
	case "", "D", "d":
		return 'D', nil
	case "N", "n", "B", "b", "P", "p", "X", "x":
		return v.s[0] &^ 0x20, nil
	}
	return 0, failf("does not know the GUID format '%s': use N, D, B, P or X", v.s)
}

// fnGuid is guid(format?): a random (version 4) GUID.
func fnGuid(env *Env, a []value) (value, error) {
	f := byte('D')
	if len(a) == 1 {
		var err error
		if f, err = guidFormat(a[0]); err != nil {
			return null, err
		}
	}
	var g [16]byte
	if _, err := rand.Read(g[:]); err != nil {
		return null, failf("cannot read random bytes: %v", err)
	}
	g[6] = g[6]&0x0f | 0x40
	g[8] = g[8]&0x3f | 0x80
	h := hex.EncodeToString(g[:])
	d := h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
	switch f {
	case 'N':
		return strV(h), nil
	case 'B':
		return strV("{" + d + "}"), nil
	case 'P':
		return strV("(" + d + ")"), nil
	case 'X':
		return strV("{0x" + h[0:8] + ",0x" + h[8:12] + ",0x" + h[12:16] + ",{0x" + h[16:18] + ",0x" + h[18:20] +
			",0x" + h[20:22] + ",0x" + h[22:24] + ",0x" + h[24:26] + ",0x" + h[26:28] + ",0x" + h[28:30] + ",0x" + h[30:32] + "}}"), nil
	}
	return strV(d), nil
}

// fnRand is rand(min, max): a random integer with min <= n < max.
func fnRand(env *Env, a []value) (value, error) {
	if a[0].k != kInt || a[1].k != kInt {
		bad := a[0]
		if a[0].k == kInt {
			bad = a[1]
		}
		return null, failf("expects integer parameters, got %s", bad.typeName())
	}
	lo, hi := a[0].i, a[1].i
	if lo >= hi {
		return null, failf("expects its minimum %d to be less than its maximum %d", lo, hi)
	}
	span := new(big.Int).Sub(big.NewInt(hi), big.NewInt(lo))
	r, err := rand.Int(rand.Reader, span)
	if err != nil {
		return null, failf("cannot read random bytes: %v", err)
	}
	return intV(lo + r.Int64()), nil
}
