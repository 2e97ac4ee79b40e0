package handlers

import (
	"net/http"

	"github.com/dvrouter/dvrouter/pkg/breaker"
	"github.com/dvrouter/dvrouter/pkg/config"
)

// Breakers reports the consumers' circuit breakers; the Deliverer implements it.
type Breakers interface {
	Breakers() []breaker.Status
}

// ConsumerList is the answer to GET /api/consumers: every consumer's breaker as this instance
// sees it (shared ones as the breaker table holds them).
type ConsumerList struct {
	Items []breaker.Status `json:"items"`
}

// consumersAPI serves GET /api/consumers, behind the failures API's authentication.
func consumersAPI(s *config.Settings, b Breakers) http.Handler {
	if s == nil {
		s = &config.Settings{}
	}
	return adminOnly(s, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allow(w, r, http.MethodGet) {
			return
		}
		list := ConsumerList{Items: []breaker.Status{}}
		if b != nil {
			list.Items = append(list.Items, b.Breakers()...)
		}
		writeJSON(w, http.StatusOK, list)
	}))
}

// adminOnly lets a request through to next only when the failures API would: with an admin key
// when standalone, as the Functions host's key check decides under the host.
func adminOnly(s *config.Settings, next http.Handler) http.Handler {
	check := &failuresAPI{settings: s}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := check.authenticate(w, r); ok {
			next.ServeHTTP(w, r)
		}
	})
}
