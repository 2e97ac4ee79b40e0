package handlers

import "net/http"

// Health describes the running service for GET /api/health. It carries no secrets.
type Health struct {
	Version string `json:"version"`
	Mode    string `json:"mode"` // direct or queued
	Queue   string `json:"queue,omitempty"`
	Routes  int    `json:"routes"`
	Store   bool   `json:"store"` // a failure store is configured
}

func healthHandler(h Health) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, struct {
			Status string `json:"status"`
			Health
		}{"ok", h})
	}
}

// ping answers the Functions host's start-up probe (GET /) at once.
func ping(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
