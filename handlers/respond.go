// Package handlers translates HTTP requests and Azure Functions envelopes into calls on the
// packages under pkg/, and their results back into responses. It holds no business rules.
package handlers

import (
	"encoding/json"
	"net/http"
)

// apiError is the body of every rejection: what is wrong, and the detail that helps fix it.
type apiError struct {
	Error  string `json:"error"`
	Detail string `json:"detail,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"error":"internal error","detail":"response could not be encoded"}`)
	}
	writeBody(w, status, append(body, '\n'))
}

// writeBody answers with body, JSON already encoded and ending in a newline.
//
// The two values share one array and go in under their canonical names: Header.Set would
// allocate a slice for each and canonicalize each name, on every answer. net/http adds the
// Content-Length itself (the body is written once, before the handler returns).
func writeBody(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	values := [...]string{"application/json", "nosniff"}
	h["Content-Type"] = values[0:1:1]
	h["X-Content-Type-Options"] = values[1:2:2]
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeError(w http.ResponseWriter, status int, msg, detail string) {
	writeJSON(w, status, apiError{Error: msg, Detail: detail})
}
