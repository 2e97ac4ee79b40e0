// Package tables opens Azure Table Storage the one way every store of dvrouter does (the
// failure store, the shared breakers, the delivery journal): with a connection string (Azurite
// locally), or with the table service URI reached by managed identity. It also holds the key
// pieces those stores share (InvertedTime).
package tables

import (
	"errors"
	"fmt"

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
		svc, err := aztables.NewServiceClient(a.ServiceURI, cred, opts)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", a.ServiceURI, err)
		}
		return svc, nil
	}
	return nil, errors.New("neither a connection string nor a service URI is set")
}
