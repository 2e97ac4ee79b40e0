package httpdest

import (
	"net/http"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		value string
		want  time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"-3", 0},
		{"2", 2 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"99999999999", 24 * time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"Wed, 01 May 2024 10:00:30 GMT", 30 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"soon", 0},
		{"1.5", 0},
	}
	for _, tc := range cases {
		if got := ParseRetryAfter(tc.value, now); got != tc.want {
			t.Errorf("ParseRetryAfter(%q) = %s, want %s", tc.value, got, tc.want)
		}
	}
}

func TestSigningKey(t *testing.T) {
	cases := []struct {
		secret  string
		want    string
		wantErr bool
	}{
		{"plain", "plain", false},
		{"whsec_aGVsbG8=", "hello", false},
		{"whsec_", "", true},
		{"whsec_***", "", true},
	}
	for _, tc := range cases {
		got, err := SigningKey(tc.secret)
		if (err != nil) != tc.wantErr || string(got) != tc.want {
			t.Errorf("SigningKey(%q) = %q, %v; want %q, error %v", tc.secret, got, err, tc.want, tc.wantErr)
		}
	}
}
