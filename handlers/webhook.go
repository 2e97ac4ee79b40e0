package handlers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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
// spelling of a name on every call, and that costs an allocation. Being canonical, they are read
// with headerValue, straight from the map the server filled with canonical names.
const (
	headerContentType  = "Content-Type"
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
	lookups    dataverse.Lookups
	log        zerolog.Logger
}

func (h *webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "method not allowed", "the webhook accepts POST only")
		return
	}
	if len(h.settings.WebhookKeys) > 0 && !h.settings.WebhookKeyValid(headerValue(r.Header, headerWebhookKey)) {
		writeError(w, http.StatusUnauthorized, "unauthorized", "header x-dvrouter-key is missing or matches no configured webhook key")
		return
	}
	if msg, ok := jsonContentType(headerValue(r.Header, headerContentType)); !ok {
		writeError(w, http.StatusUnsupportedMediaType, "unsupported content type", msg)
		return
	}
	body, status, err := readBounded(w, r, h.settings.MaxBody, h.settings.BodyReadTimeout)
	if err != nil {
		writeError(w, status, http.StatusText(status), err.Error())
		drainRefused(w, r, status)
		return
	}
	ev, err := dataverse.DecodeWith(body, dataverse.DecodeOptions{
		SizeExceeded:     headerValue(r.Header, headerSizeExceeded) != "",
		OrganizationHost: headerValue(r.Header, headerOrganization),
		Lookups:          h.lookups,
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
			// The detail says what failed, not where: the caller is outside, the log has the rest.
			writeError(w, http.StatusServiceUnavailable, "event could not be queued",
				"the Service Bus queue did not accept the event in time; retry later")
			return
		}
		dispatch.EventLog(h.log.Info(), ev).Msg("event queued")
		writeJSON(w, http.StatusAccepted, map[string]any{"id": ev.ID, "queued": true})
		return
	}
	res, err := h.dispatcher.Dispatch(r.Context(), ev)
	if err != nil {
		dispatch.EventLog(h.log.Error(), ev).Err(err).Msg("outcome not durable")
		// The detail says what failed, not where (storage URLs, account and table names stay in
		// the log line above).
		writeError(w, http.StatusServiceUnavailable, "delivery outcome could not be recorded",
			"the failure store did not answer; retry later")
		return
	}
	writeBody(w, http.StatusOK, append(res.AppendJSON(make([]byte, 0, 256)), '\n'))
}

// headerValue is h.Get(name) for a name already in canonical form: Get checks and, if need be,
// rewrites the name on every call (a pass over its bytes), which a constant needs only once, in
// TestHeaderNames_AreCanonical. net/http's server stores request headers under canonical names.
func headerValue(h http.Header, name string) string {
	if v := h[name]; len(v) > 0 {
		return v[0]
	}
	return ""
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
// After a 413 the caller writes its answer and then calls drainRefused.
func readBounded(w http.ResponseWriter, r *http.Request, max int64, timeout time.Duration) ([]byte, int, error) {
	rc := http.NewResponseController(w)
	if r.ContentLength > max {
		prepareRefusal(w, rc)
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("body of %d bytes is over the limit of %d bytes (DVROUTER_MAX_BODY)", r.ContentLength, max)
	}
	// Read into one buffer sized from Content-Length (Dataverse always sends it) rather than
	// letting io.ReadAll grow one by doubling: a 5 KB event would otherwise cost five buffers.
	size := int64(bytes.MinRead)
	if r.ContentLength > 0 {
		size += r.ContentLength
	}
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
			prepareRefusal(w, rc)
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

// How much of a refused oversized body is read and thrown away, and for how long, so the
// client gets to read its 413. A client that is still sending when the server closes the
// connection gets a TCP reset, and a reset makes its kernel drop the 413 it has not read yet:
// the client then sees "connection reset" instead of the answer. Past either bound the
// connection is closed anyway; a client that sends that much is not Dataverse (it trims
// bodies to 256 KB).
const (
	refusedDrainLimit   = 64 << 20
	refusedDrainTimeout = 5 * time.Second
)

// prepareRefusal readies a 413: full duplex keeps the body readable after the answer is
// written (an HTTP/1 server otherwise stops reading it), and the connection closes afterwards.
func prepareRefusal(w http.ResponseWriter, rc *http.ResponseController) {
	w.Header().Set("Connection", "close")
	_ = rc.EnableFullDuplex()
}

// drainRefused runs after a refusal has been written. For a 413 it sends the answer on its way
// and reads what the client is still sending, within bounds, before the connection is closed.
func drainRefused(w http.ResponseWriter, r *http.Request, status int) {
	if status != http.StatusRequestEntityTooLarge {
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	if rc.SetReadDeadline(time.Now().Add(refusedDrainTimeout)) != nil {
		return // not a real connection (tests' recorders): nothing to drain
	}
	_, _ = io.CopyN(io.Discard, r.Body, refusedDrainLimit)
}

// decodeStatus maps a decode error to its status: 400 for bytes that are not valid JSON,
// 422 for valid JSON that is not a RemoteExecutionContext.
func decodeStatus(err error) (int, string) {
	if dataverse.IsShape(err) {
		return http.StatusUnprocessableEntity, "not a Dataverse RemoteExecutionContext"
	}
	return http.StatusBadRequest, "malformed JSON"
}
