package tables

import (
	"strings"
	"testing"
)

func TestService(t *testing.T) {
	tests := []struct {
		name    string
		acct    Account
		wantErr string // "" for a client
	}{
		{"connection string", Account{ConnectionString: "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=c2VjcmV0;TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"}, ""},
		{"connection string wins over the URI", Account{ConnectionString: "UseDevelopmentStorage=false;AccountKey=c2VjcmV0;nonsense", ServiceURI: "https://a.table.core.windows.net"}, "connection string is malformed"},
		{"service URI with a user-assigned identity", Account{ServiceURI: "https://a.table.core.windows.net", ClientID: "00000000-0000-0000-0000-000000000001"}, ""},
		{"nothing", Account{}, "neither a connection string nor a service URI"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			svc, err := tc.acct.Service(nil)
			switch {
			case tc.wantErr == "" && (err != nil || svc == nil):
				t.Fatalf("Service = %v, %v; want a client", svc, err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Service error = %v, want %q", err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "c2VjcmV0") {
				t.Errorf("the error %q shows the account key", err)
			}
		})
	}
}
