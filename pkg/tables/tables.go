// Package tables opens Azure Table Storage the one way every store of dvrouter does (the
// failure store, the shared breakers, the delivery journal): with a connection string (Azurite
// locally), or with the table service URI reached by managed identity. It also holds the key
// pieces those stores share (InvertedTime).
package tables

import (
	"cmp"
	"errors"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

// Account says where the tables are.
type Account struct {
	// ConnectionString is a Table Storage connection string; when set, ServiceURI and ClientID
	// are ignored.
	ConnectionString string
	// ServiceURI is the table service URL (https://ACCOUNT.table.core.windows.net), reached
	// with managed identity: user-assigned when ClientID is set, else DefaultAzureCredential.
	ServiceURI string
	ClientID   string
	// Credential, when set, is used with ServiceURI instead of a managed identity.
	Credential azcore.TokenCredential
}

// storageScope is the token scope of Table Storage, the same in every cloud.
const storageScope = "https://storage.azure.com/.default"

// endpoint is where the account's table service is and how a request to it is authorized:
// by an account key, by a token, or by a SAS already in url (or, for Azurite without a key,
// not at all).
type endpoint struct {
	url  string
	key  *sharedKey
	cred azcore.TokenCredential
}

func (a Account) endpoint() (endpoint, error) {
	switch {
	case a.ConnectionString != "":
		ep, err := parseConnectionString(a.ConnectionString)
		if err != nil {
			// Never the string itself: the key must not reach logs.
			return endpoint{}, errors.New("connection string is malformed")
		}
		return ep, nil
	case a.ServiceURI != "":
		cred, err := a.credential()
		if err != nil {
			return endpoint{}, err
		}
		return endpoint{url: a.ServiceURI, cred: cred}, nil
	}
	return endpoint{}, errors.New("neither a connection string nor a service URI is set")
}

func (a Account) credential() (azcore.TokenCredential, error) {
	if a.Credential != nil {
		return a.Credential, nil
	}
	var cred azcore.TokenCredential
	var err error
	if a.ClientID != "" {
		cred, err = azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ID: azidentity.ClientID(a.ClientID)})
	} else {
		cred, err = azidentity.NewDefaultAzureCredential(nil)
	}
	if err != nil {
		return nil, fmt.Errorf("credential: %w", err)
	}
	return cred, nil
}

// parseConnectionString reads the settings of a storage connection string that locate the
// table service (TableEndpoint, or DefaultEndpointsProtocol, AccountName and EndpointSuffix)
// and authorize it (AccountKey, or SharedAccessSignature), as the SDK's own parser does.
func parseConnectionString(s string) (endpoint, error) {
	kv := map[string]string{}
	for _, part := range strings.Split(strings.TrimRight(s, ";"), ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return endpoint{}, errors.New("a setting without =")
		}
		kv[k] = v
	}
	account := kv["AccountName"]
	url := kv["TableEndpoint"]
	if url == "" {
		if account == "" {
			return endpoint{}, errors.New("no AccountName")
		}
		url = cmp.Or(kv["DefaultEndpointsProtocol"], "https") + "://" + account + ".table." + cmp.Or(kv["EndpointSuffix"], "core.windows.net")
	}
	if key := kv["AccountKey"]; key != "" {
		if account == "" {
			return endpoint{}, errors.New("an AccountKey without an AccountName")
		}
		k, err := newSharedKey(account, key)
		if err != nil {
			return endpoint{}, err
		}
		return endpoint{url: url, key: k}, nil
	}
	if sas := strings.TrimPrefix(kv["SharedAccessSignature"], "?"); sas != "" {
		return endpoint{url: strings.TrimRight(url, "/") + "/?" + sas}, nil
	}
	return endpoint{}, errors.New("neither an AccountKey nor a SharedAccessSignature")
}

// Service makes the account's service client; it makes no call.
func (a Account) Service(opts *aztables.ClientOptions) (*aztables.ServiceClient, error) {
	switch {
	case a.ConnectionString != "":
		svc, err := aztables.NewServiceClientFromConnectionString(a.ConnectionString, opts)
		if err != nil {
			// The SDK's message may quote the connection string; the key must not reach logs.
			return nil, errors.New("connection string is malformed")
		}
		return svc, nil
	case a.ServiceURI != "":
		cred, err := a.credential()
		if err != nil {
			return nil, err
		}
		svc, err := aztables.NewServiceClient(a.ServiceURI, cred, opts)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", a.ServiceURI, err)
		}
		return svc, nil
	}
	return nil, errors.New("neither a connection string nor a service URI is set")
}
