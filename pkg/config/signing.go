package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Signing key bounds from the Standard Webhooks specification (spec/standard-webhooks.md,
// "Signature scheme": a symmetric secret is random, at least 24 bytes, 64 at most).
const (
	MinSigningKeyBytes = 24
	MaxSigningKeyBytes = 64
	// MaxSigningSecrets bounds how many secrets sign at once: two during a rotation; a few more
	// are tolerated, a long list is a mistake.
	MaxSigningSecrets = 4
)

// SigningKeys turns the value of a consumer's signingSecret setting into its HMAC keys, one per
// secret, in the order written. The value holds one Standard Webhooks secret, or several
// separated by spaces while a secret is being rotated (every request then carries one `v1,`
// signature per secret in webhook-signature). A secret is the base64 of its key bytes,
// optionally prefixed `whsec_`, exactly as the official libraries read it
// (`new Webhook(secret)` strips the prefix and base64-decodes the rest), so a consumer verifies
// with the same string dvrouter signs with. Anything else is refused: signing with bytes the
// consumer's library cannot reproduce would fail every delivery.
//
// The route file loader and the HTTP destination both call it, so `dvrouter validate` refuses
// exactly what `dvrouter serve` refuses. Errors never echo the secret.
func SigningKeys(value string) ([][]byte, error) {
	secrets := strings.Fields(value)
	switch {
	case len(secrets) == 0:
		return nil, errors.New("the setting is empty")
	case len(secrets) > MaxSigningSecrets:
		return nil, fmt.Errorf("the setting holds %d secrets; at most %d sign at once (two while rotating)", len(secrets), MaxSigningSecrets)
	}
	keys := make([][]byte, 0, len(secrets))
	for i, s := range secrets {
		which := "the secret"
		if len(secrets) > 1 {
			which = fmt.Sprintf("secret %d of %d", i+1, len(secrets))
		}
		b64 := strings.TrimPrefix(s, "whsec_")
		if b64 == "" {
			return nil, fmt.Errorf("%s is empty after its whsec_ prefix", which)
		}
		key, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, fmt.Errorf("%s is not base64 (standard alphabet, with padding): a Standard Webhooks secret is whsec_ followed by the base64 of at least %d random bytes, for example from `openssl rand -base64 32`", which, MinSigningKeyBytes)
		}
		if len(key) < MinSigningKeyBytes || len(key) > MaxSigningKeyBytes {
			return nil, fmt.Errorf("%s decodes to %d bytes; Standard Webhooks keys are %d to %d random bytes", which, len(key), MinSigningKeyBytes, MaxSigningKeyBytes)
		}
		for _, k := range keys {
			if string(k) == string(key) {
				return nil, fmt.Errorf("%s repeats an earlier one", which)
			}
		}
		keys = append(keys, key)
	}
	return keys, nil
}
