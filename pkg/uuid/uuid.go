// Package uuid prints 16 bytes as an RFC 9562 UUID: the one formatter for the ids dvrouter
// derives (dataverse.HashUUID) and the random ones it makes (multipart boundaries).
package uuid

import (
	"crypto/rand"
	"encoding/hex"
)

// Format sets u's version nibble to version and its variant bits to RFC 4122's, and returns it
// in the lowercase 8-4-4-4-12 form.
func Format(u [16]byte, version byte) string {
	u[6] = u[6]&0x0f | version<<4
	u[8] = u[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], u[10:16])
	return string(s[:])
}

// Random is a random UUID (version 4).
func Random() string {
	var u [16]byte
	_, _ = rand.Read(u[:]) // crypto/rand.Read does not fail
	return Format(u, 4)
}
