package config

import (
	"encoding/base64"
	"strings"
	"testing"
)

func b64(n int) string {
	return base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", n-1) + "!"))
}

func TestSigningKeys(t *testing.T) {
	k32, other32 := b64(32), base64.StdEncoding.EncodeToString([]byte(strings.Repeat("z", 32)))
	cases := []struct {
		name, value string
		keys        int
		wantErr     string // substring; empty: accepted
	}{
		{"whsec secret", "whsec_" + k32, 1, ""},
		{"unprefixed base64, as the spec and libraries read it", k32, 1, ""},
		{"shortest key", "whsec_" + b64(24), 1, ""},
		{"longest key", "whsec_" + b64(64), 1, ""},
		{"two secrets while rotating", "whsec_" + k32 + " whsec_" + other32, 2, ""},
		{"surrounding and repeated spaces", "  whsec_" + k32 + "   " + other32 + "\n", 2, ""},
		{"empty setting", "   ", 0, "the setting is empty"},
		{"empty whsec_", "whsec_", 0, "the secret is empty after its whsec_ prefix"},
		{"second of two empty", "whsec_" + k32 + " whsec_", 0, "secret 2 of 2 is empty"},
		{"not base64", "whsec_not*base64", 0, "is not base64"},
		{"plain text secret", "a-plain-shared-secret", 0, "is not base64"},
		{"missing padding", strings.TrimRight("whsec_"+b64(25), "="), 0, "is not base64"},
		{"key under 24 bytes", "whsec_" + b64(23), 0, "decodes to 23 bytes"},
		{"key over 64 bytes", "whsec_" + b64(65), 0, "decodes to 65 bytes"},
		{"the same secret twice", "whsec_" + k32 + " " + k32, 0, "secret 2 of 2 repeats an earlier one"},
		{"too many", strings.Repeat("whsec_"+k32+" ", 5), 0, "at most 4"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			keys, err := SigningKeys(tc.value)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.wantErr == "" && len(keys) != tc.keys:
				t.Fatalf("%d keys, want %d", len(keys), tc.keys)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), strings.TrimPrefix(strings.TrimSpace(tc.value), "whsec_")) && len(strings.TrimSpace(tc.value)) > 6 {
				t.Fatalf("error echoes the secret: %v", err)
			}
		})
	}
}

// The route file refuses, at its line and column, every secret SigningKeys refuses: what
// `dvrouter validate` reports is what would stop `dvrouter serve`.
func TestLoadRoutes_RefusesTheSigningSecretsServeWouldRefuse(t *testing.T) {
	for _, value := range []string{"whsec_", "whsec_" + b64(32) + " whsec_", "whsec_" + b64(16), "plain-text", "whsec_" + b64(32) + " " + b64(32)} {
		_, want := SigningKeys(value)
		if want == nil {
			t.Fatalf("SigningKeys(%q) accepted it", value)
		}
		src := minimalConsumer + "    signingSecret: \"%SECRET%\"\n"
		_, err := LoadRoutesBytes("r.yaml", []byte(src), env(map[string]string{"SECRET": value}))
		if err == nil {
			t.Fatalf("route file with secret %q loaded", value)
		}
		wantLine := "r.yaml:5:20: signingSecret: setting SECRET: " + want.Error()
		if err.Error() != wantLine {
			t.Errorf("error =\n%v\nwant\n%s", err, wantLine)
		}
	}
	src := minimalConsumer + "    signingSecret: \"%SECRET%\"\n"
	rf, err := LoadRoutesBytes("r.yaml", []byte(src), env(map[string]string{"SECRET": "whsec_" + b64(32) + " whsec_" + b64(40)}))
	if err != nil {
		t.Fatal(err)
	}
	if keys, err := SigningKeys(specField(rf.Consumers[0], "SigningSecret")); err != nil || len(keys) != 2 {
		t.Fatalf("two rotating secrets: %d keys, %v", len(keys), err)
	}
}
