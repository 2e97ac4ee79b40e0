package handlers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/dataverse"
	"github.com/dvrouter/dvrouter/pkg/dispatch"
)

// Dispatcher processes a decoded event and keeps poison messages; *dispatch.Dispatcher is one.
type Dispatcher interface {
	Dispatch(ctx context.Context, ev *dataverse.Event) (dispatch.Result, error)
	RecordPoison(ctx context.Context, p dispatch.Poison) error
}

// Enqueuer puts an accepted event on the ingress queue (queued mode).
type Enqueuer interface {
	Enqueue(ctx context.Context, ev *dataverse.Event) error
}

// Request headers the webhook reads, in canonical form: Header.Get canonicalizes any other
// spelling of a name on every call, and that costs an allocation.
const (
	headerWebhookKey   = "X-Dvrouter-Key"
	headerSizeExceeded = "X-Ms-Dynamics-Msg-Size-Exceeded" // x-ms-dynamics-msg-size-exceeded
	headerOrganization = "X-Ms-Dynamics-Organization"      // x-ms-dynamics-organization: the environment's host
)

// webhook is POST /api/dataverse/webhook: authenticate, bound, decode, then enqueue (queued
// mode) or dispatch inline (direct mode). It never answers 2xx before the event is durable.
type webhook struct {
	settings   *config.Settings
	dispatcher Dispatcher
	queue      Enqueuer // nil in direct mode
	log        zerolog.Logger
}

func (h *webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "method not allowed", "the webhook accepts POST only")
		return
	}
	if len(h.settings.WebhookKeys) > 0 && !h.settings.WebhookKeyValid(r.Header.Get(headerWebhookKey)) {
		writeError(w, http.StatusUnauthorized, "unauthorized", "header x-dvrouter-key is missing or matches no configured webhook key")
		return
	}
	if msg, ok := jsonContentType(r.Header.Get("Content-Type")); !ok {
		writeError(w, http.StatusUnsupportedMediaType, "unsupported content type", msg)
		return
	}
	body, status, err := readBounded(w, r, h.settings.MaxBody, h.settings.BodyReadTimeout)
	if err != nil {
		writeError(w, status, http.StatusText(status), err.Error())
		return
	}
	ev, err := dataverse.DecodeWith(body, dataverse.DecodeOptions{
		SizeExceeded:     r.Header.Get(headerSizeExceeded) != "",
		OrganizationHost: r.Header.Get(headerOrganization),
	})
	if err != nil {
		status, msg := decodeStatus(err)
		writeError(w, status, msg, err.Error())
		return
	}
	if len(h.settings.AllowedOrgs) > 0 && !h.settings.AllowedOrgs[strings.ToLower(ev.OrganizationID)] {
		writeError(w, http.StatusForbidden, "organization not allowed",
			fmt.Sprintf("organization %q is not in DVROUTER_ALLOWED_ORGS", ev.OrganizationID))
		return
	}
	if h.queue != nil {
		// Bounded like a direct-mode delivery: a Service Bus that does not answer must still get
		// Dataverse a 503 (which it retries) before its own 60 s timeout (which it does not).
		ctx, cancel := context.WithTimeout(r.Context(), h.settings.DeliveryBudget)
		err := h.queue.Enqueue(ctx, ev)
		cancel()
		if err != nil {
			dispatch.EventLog(h.log.Error(), ev).Err(err).Msg("enqueue failed")
			// 503: Dataverse retries 502/503/504 once, and the event is not ours yet.
			writeError(w, http.StatusServiceUnavailable, "event could not be queued", err.Error())
			return
		}
		dispatch.EventLog(h.log.Info(), ev).Msg("event queued")
		writeJSON(w, http.StatusAccepted, map[string]any{"id": ev.ID, "queued": true})
		return
	}
	res, err := h.dispatcher.Dispatch(r.Context(), ev)
	if err != nil {
		dispatch.EventLog(h.log.Error(), ev).Err(err).Msg("outcome not durable")
		writeError(w, http.StatusServiceUnavailable, "delivery outcome could not be recorded", err.Error())
		return
	}
	writeBody(w, http.StatusOK, append(res.AppendJSON(make([]byte, 0, 256)), '\n'))
}

// jsonContentType accepts application/json, text/json and any +json type, with parameters.
func jsonContentType(v string) (string, bool) {
	if v == "application/json" { // what Dataverse sends: nothing to parse
		return "", true
	}
	if v == "" {
		return "Content-Type is missing; send application/json", false
	}
	mt, _, err := mime.ParseMediaType(v)
	if err != nil {
		return fmt.Sprintf("Content-Type %q cannot be parsed", v), false
	}
	if mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json") {
		return "", true
	}
	return fmt.Sprintf("Content-Type %q is not JSON; send application/json", mt), false
}

// readBounded reads the whole body, refusing anything over max without reading past it, and
// anything that takes longer than timeout to arrive: a client trickling a body would otherwise
// hold the handler forever (the server sets no ReadTimeout, which would also cut deliveries).
func readBounded(w http.ResponseWriter, r *http.Request, max int64, timeout time.Duration) ([]byte, int, error) {
	if r.ContentLength > max {
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("body of %d bytes is over the limit of %d bytes (DVROUTER_MAX_BODY)", r.ContentLength, max)
	}
	// Read into one buffer sized from Content-Length (Dataverse always sends it) rather than
	// letting io.ReadAll grow one by doubling: a 5 KB event would otherwise cost five buffers.
	size := int64(bytes.MinRead)
	if r.ContentLength > 0 {
		size += r.ContentLength
	}
	rc := http.NewResponseController(w)
	// The deadline is lifted once the body is in: left in place it would cancel the request's
	// context while the event is delivered. Not every writer supports deadlines (tests' recorders).
	if timeout > 0 && rc.SetReadDeadline(time.Now().Add(timeout)) == nil {
		defer func() { _ = rc.SetReadDeadline(time.Time{}) }()
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, max))
	body := buf.Bytes()
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("body is over the limit of %d bytes (DVROUTER_MAX_BODY)", max)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// The rest of the body may still come: the connection cannot carry another request,
			// and closing it keeps the server from waiting to discard that rest.
			w.Header().Set("Connection", "close")
			return nil, http.StatusRequestTimeout, fmt.Errorf("the body did not arrive within %s", timeout)
		}
		return nil, http.StatusBadRequest, fmt.Errorf("reading the body: %w", err)
	}
	if len(body) == 0 {
		return nil, http.StatusBadRequest, errors.New("the body is empty")
	}
	return body, 0, nil
}

// decodeStatus maps a decode error to its status: 400 for bytes that are not valid JSON,
// 422 for valid JSON that is not a RemoteExecutionContext.
func decodeStatus(err error) (int, string) {
	if dataverse.IsShape(err) {
		return http.StatusUnprocessableEntity, "not a Dataverse RemoteExecutionContext"
	}
	return http.StatusBadRequest, "malformed JSON"
}
