package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/customhandler"
	"github.com/dvrouter/dvrouter/pkg/dataverse"
	"github.com/dvrouter/dvrouter/pkg/dispatch"
	"github.com/dvrouter/dvrouter/pkg/queue"
)

// queueBinding is the serviceBusTrigger binding name in functions/DataverseQueue/function.json.
const queueBinding = "message"

// envelopeFactor bounds the host's envelope at a multiple of the webhook body limit: base64
// grows a body by a third, and the metadata beside it is small.
const envelopeFactor = 4

// queueInvocation is POST /DataverseQueue: the Functions host hands over one Service Bus message.
// A 2xx answer completes the message, anything else abandons it (Service Bus redelivers), so it
// answers 2xx only once every outcome is durable.
type queueInvocation struct {
	settings   *config.Settings
	dispatcher Dispatcher
	log        zerolog.Logger
}

func (h *queueInvocation) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		invocationError(w, http.StatusMethodNotAllowed, "method not allowed", "the Functions host POSTs invocations")
		return
	}
	invocation := r.Header.Get(headerInvocationID)
	log := h.log.With().Str("invocationId", invocation).Logger()
	raw, status, err := readBounded(w, r, h.settings.MaxBody*envelopeFactor, h.settings.BodyReadTimeout)
	if err != nil {
		invocationError(w, status, "invocation could not be read", err.Error())
		return
	}
	req, err := customhandler.ParseInvokeRequest(raw)
	if err != nil {
		invocationError(w, http.StatusBadRequest, "malformed invocation", err.Error())
		return
	}
	msg, err := req.ServiceBusMessage(queueBinding)
	if err != nil {
		invocationError(w, http.StatusBadRequest, "malformed invocation", err.Error())
		return
	}
	log = log.With().Str("messageId", msg.MessageID).Int("deliveryCount", msg.DeliveryCount).Logger()

	ev, err := decodeMessage(msg)
	if err != nil {
		// A message that can never be decoded is kept as poison and acknowledged; when it cannot
		// be kept, the host abandons it and Service Bus keeps it (dead-lettering in the end).
		p := dispatch.Poison{Body: msg.Body, MessageID: msg.MessageID, EnqueuedTime: msg.EnqueuedTime, Reason: err}
		if rerr := h.dispatcher.RecordPoison(r.Context(), p); rerr != nil {
			log.Error().Err(rerr).Str("reason", err.Error()).Msg("poison message not recorded")
			invocationReply(w, http.StatusInternalServerError, nil,
				fmt.Sprintf("message %s cannot be decoded (%v) and could not be recorded: %v", msg.MessageID, err, rerr))
			return
		}
		invocationReply(w, http.StatusOK, map[string]any{"poison": true, "messageId": msg.MessageID},
			fmt.Sprintf("message %s cannot be decoded and was recorded as poison: %v", msg.MessageID, err))
		return
	}
	res, err := h.dispatcher.Dispatch(r.Context(), ev)
	if err != nil {
		log.Error().Err(err).Str("eventId", ev.ID).Msg("outcome not durable")
		invocationReply(w, http.StatusInternalServerError, nil,
			fmt.Sprintf("event %s: outcome could not be recorded, the message will be redelivered: %v", ev.ID, err))
		return
	}
	invocationReply(w, http.StatusOK, res, fmt.Sprintf("event %s %s %s: matched %d routes, delivered to %d consumers, %d failures recorded",
		ev.ID, ev.Message, ev.Table, len(res.Matched), len(res.Delivered), len(res.Failed)))
}

// decodeMessage decodes a queued event. Dataverse's binary XML format (application/msbin1) and
// text XML are refused with a reason rather than guessed at.
func decodeMessage(msg *customhandler.Message) (*dataverse.Event, error) {
	ct := strings.ToLower(msg.ContentType)
	switch {
	case strings.Contains(ct, "msbin1"):
		return nil, errors.New("message is in Dataverse's binary XML format (application/msbin1); set the service endpoint's message format to JSON")
	case strings.Contains(ct, "xml"):
		return nil, errors.New("message is in Dataverse's XML format; set the service endpoint's message format to JSON")
	}
	ev, err := dataverse.Decode(msg.Body)
	if err != nil {
		return nil, err
	}
	if exceeded(msg.ApplicationProperties) {
		ev.SizeExceeded = true
	}
	if h, ok := msg.ApplicationProperties[queue.PropOrgHost].(string); ok {
		ev.OrganizationHost = dataverse.OrganizationHost(h)
	}
	return ev, nil
}

// exceeded reports whether the message's properties say its context parts were removed for size.
// Our own enqueue sets "sizeExceeded"; Dataverse adds a property noting the size limit whose exact
// name is not documented (FACTS.md section 3), so any property whose name says "exceeded" counts.
func exceeded(props map[string]any) bool {
	for k, v := range props {
		lk := strings.ToLower(k)
		if !strings.Contains(lk, "exceeded") {
			continue
		}
		switch v := v.(type) {
		case bool:
			if v {
				return true
			}
		case string:
			if !strings.EqualFold(v, "false") && v != "" {
				return true
			}
		}
	}
	return false
}

// invocationError refuses an invocation in the custom-handler shape, with the reason in Logs for
// the invocation's log and as the usual JSON error beside it.
func invocationError(w http.ResponseWriter, status int, msg, detail string) {
	writeJSON(w, status, struct {
		customhandler.InvokeResponse
		apiError
	}{customhandler.InvokeResponse{Outputs: map[string]any{}, Logs: []string{msg + ": " + detail}}, apiError{msg, detail}})
}

// invocationReply answers in the custom-handler shape: JSON, never empty, Logs for the invocation.
func invocationReply(w http.ResponseWriter, status int, ret any, logLine string) {
	writeJSON(w, status, customhandler.InvokeResponse{
		Outputs:     map[string]any{},
		Logs:        []string{logLine},
		ReturnValue: ret,
	})
}
