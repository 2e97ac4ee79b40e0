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

// consumersAPI serves GET /api/consumers, behind the support API's authentication (any role
// may read it).
func consumersAPI(s *config.Settings, b Breakers) http.Handler {
	if s == nil {
		s = &config.Settings{}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/consumers", func(w http.ResponseWriter, r *http.Request) {
		list := ConsumerList{Items: []breaker.Status{}}
		if b != nil {
			list.Items = append(list.Items, b.Breakers()...)
		}
		writeJSON(w, http.StatusOK, list)
	})
	mux.HandleFunc("/api/consumers", methodNotAllowed(http.MethodGet))
	return authenticate(s, mux)
}
