package dest

import "context"

// BatchPublisher is a Publisher that can also send several messages in one request, all of them
// or none (a Dataverse $batch change set); bulk replay uses it.
type BatchPublisher interface {
	Publisher
	// MaxBatch is the most messages PublishBatch takes.
	MaxBatch() int
	// PublishBatch makes one attempt to send msgs together. It returns nil only when every one
	// was accepted; otherwise none was, and each can be sent on its own.
	PublishBatch(ctx context.Context, msgs []Message) error
}
