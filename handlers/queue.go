package handlers

import (
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
	lookups    dataverse.Lookups
	log        zerolog.Logger
}

func (h *queueInvocation) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	invocation := r.Header.Get(headerInvocationID)
	log := h.log.With().Str("invocationId", invocation).Logger()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		refuseInvocation(w, log, http.StatusMethodNotAllowed, "method not allowed", "the Functions host POSTs invocations")
		return
	}
	raw, status, err := readBounded(w, r, h.settings.MaxBody*envelopeFactor, h.settings.BodyReadTimeout)
	if err != nil {
		refuseInvocation(w, log, status, "invocation could not be read", err.Error())
		drainRefused(w, r, status)
		return
	}
	req, err := customhandler.ParseInvokeRequest(raw)
	if err != nil {
		refuseInvocation(w, log, http.StatusBadRequest, "malformed invocation", err.Error())
		return
	}
	msg, err := req.ServiceBusMessage(queueBinding)
	if err != nil {
		refuseInvocation(w, log, http.StatusBadRequest, "malformed invocation", err.Error())
		return
	}
	log = log.With().Str("messageId", msg.MessageID).Int("deliveryCount", msg.DeliveryCount).Str("bodyForm", msg.Form).Logger()

	ev, err := decodeMessage(msg, h.lookups)
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

// decodeMessage decodes a queued event in whichever of Dataverse's three message formats it came
// (JSON, text XML, .NET binary XML): the message's ContentType says which, else its first bytes.
// An error names the format and, for a malformed body, the byte offset.
func decodeMessage(msg *customhandler.Message, lookups dataverse.Lookups) (*dataverse.Event, error) {
	format, ok := dataverse.ParseFormat(msg.ContentType)
	if !ok {
		format = dataverse.Sniff(msg.Body)
	}
	ev, err := dataverse.DecodeFormat(msg.Body, format, dataverse.DecodeOptions{
		SizeExceeded: exceeded(msg.ApplicationProperties),
		Lookups:      lookups,
	})
	if err != nil {
		return nil, fmt.Errorf("%s body: %w", format, err)
	}
	if h, ok := msg.ApplicationProperties[queue.PropOrgHost].(string); ok {
		ev.OrganizationHost = dataverse.OrganizationHost(h)
	}
	return ev, nil
}

// exceeded reports whether the message's properties say its context parts were removed for size.
// Our own enqueue sets "sizeExceeded"; Dataverse adds a property noting the size limit whose exact
// name is not documented, so any property whose name says "exceeded" counts.
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

// refuseInvocation refuses an invocation in the custom-handler shape. The reason goes to the
// log as well as into Logs: the host throws away the body of a non-2xx answer, Logs included
// (DefaultHttpWorkerService calls EnsureSuccessStatusCode before reading it), so under the host
// the only record of why is the line this writes to stdout.
func refuseInvocation(w http.ResponseWriter, log zerolog.Logger, status int, msg, detail string) {
	log.Warn().Int("status", status).Str("error", msg).Str("detail", detail).Msg("invocation refused")
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
