package uuid_test

import (
	"regexp"
	"testing"

	"github.com/dvrouter/dvrouter/pkg/uuid"
)

func TestFormat_SetsVersionAndVariantAndPrintsLowercase(t *testing.T) {
	var u [16]byte
	for i := range u {
		u[i] = 0xff
	}
	if got, want := uuid.Format(u, 8), "ffffffff-ffff-8fff-bfff-ffffffffffff"; got != want {
		t.Errorf("Format(all ones, 8) = %s, want %s", got, want)
	}
	if got, want := uuid.Format([16]byte{}, 4), "00000000-0000-4000-8000-000000000000"; got != want {
		t.Errorf("Format(zeros, 4) = %s, want %s", got, want)
	}
}

func TestRandom_IsAVersion4UUIDAndDiffers(t *testing.T) {
	form := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	a, b := uuid.Random(), uuid.Random()
	if !form.MatchString(a) || !form.MatchString(b) || a == b {
		t.Errorf("Random() = %s, %s: want two different version-4 UUIDs", a, b)
	}
}
