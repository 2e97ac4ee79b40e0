package testenv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// standinStartTimeout bounds how long node may take to print its ports. It starts in well
// under a second; the margin is for a machine shared by many test runs.
const standinStartTimeout = 15 * time.Second

// ServiceBus is a running Service Bus stand-in (test/servicebus-standin): a small AMQP 1.0
// broker that the real azservicebus SDK uses over loopback, with an HTTP side channel that
// lists every message sent to an entity. See test/servicebus-standin/README.md for what it
// implements.
type ServiceBus struct {
	// ConnectionString opens the stand-in with azservicebus.NewClientFromConnectionString.
	ConnectionString string
	// AMQPPort and HTTPPort are the stand-in's ports on 127.0.0.1; Restart keeps them.
	AMQPPort int
	HTTPPort int

	cfg   sbConfig
	state string // file the stand-in saves its messages to on Stop and loads on Restart
	http  *http.Client

	mu     sync.Mutex
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	exited chan struct{}
	output *processOutput
}

// SBOption configures StartServiceBus.
type SBOption func(*sbConfig)

type sbConfig struct {
	entities         []string
	topics           []string
	autoCreate       bool
	lockDuration     time.Duration
	maxDeliveryCount int
	maxMessageSize   int
	duplicates       []string
	duplicateWindow  time.Duration
	verbose          bool
}

// WithEntities creates queues ("orders") and topic subscriptions
// ("events/subscriptions/audit", which also creates topic "events"). Each queue and
// subscription has a dead-letter queue, "<name>/$deadletterqueue".
func WithEntities(names ...string) SBOption {
	return func(c *sbConfig) { c.entities = append(c.entities, names...) }
}

// WithTopics creates topics that have no subscriptions (a message sent to one is kept in
// the side channel and goes nowhere, as in Azure).
func WithTopics(names ...string) SBOption {
	return func(c *sbConfig) { c.topics = append(c.topics, names...) }
}

// WithAutoCreate makes the stand-in create a queue (or topic/subscriptions/x) the first
// time a link names it. Without it an unknown entity is refused with amqp:not-found, as
// Azure does.
func WithAutoCreate() SBOption {
	return func(c *sbConfig) { c.autoCreate = true }
}

// WithLockDuration sets the PeekLock lock duration (default 60s, Azure's default). Tests of
// lock expiry use a few hundred milliseconds.
func WithLockDuration(d time.Duration) SBOption {
	return func(c *sbConfig) { c.lockDuration = d }
}

// WithMaxDeliveryCount sets the deliveries after which a message is dead-lettered
// (default 10, Azure's default).
func WithMaxDeliveryCount(n int) SBOption {
	return func(c *sbConfig) { c.maxDeliveryCount = n }
}

// WithMaxMessageSize sets the max-message-size advertised to senders (default 262144 bytes,
// the Standard tier's limit). The SDK sizes batches by it.
func WithMaxMessageSize(bytes int) SBOption {
	return func(c *sbConfig) { c.maxMessageSize = bytes }
}

// WithDuplicateDetection turns duplicate detection on for queues or topics, as a Service Bus
// entity created with requiresDuplicateDetection: a message whose MessageId was first enqueued
// there within the window is accepted (the send succeeds) and dropped. The side channel lists
// it with state "duplicate" and sequence number 0.
func WithDuplicateDetection(queuesOrTopics ...string) SBOption {
	return func(c *sbConfig) { c.duplicates = append(c.duplicates, queuesOrTopics...) }
}

// WithDuplicateDetectionWindow sets the duplicate detection history window (default 10 minutes,
// Azure's default duplicateDetectionHistoryTimeWindow).
func WithDuplicateDetectionWindow(d time.Duration) SBOption {
	return func(c *sbConfig) { c.duplicateWindow = d }
}

// WithVerbose makes the stand-in log refused links and errors to its output (Output).
func WithVerbose() SBOption {
	return func(c *sbConfig) { c.verbose = true }
}

// SBMessage is one message as the stand-in recorded it, from the side channel.
type SBMessage struct {
	Entity           string `json:"entity"`
	SequenceNumber   int64  `json:"sequenceNumber"`
	MessageID        string `json:"messageId"`
	ContentType      string `json:"contentType"`
	CorrelationID    string `json:"correlationId"`
	Subject          string `json:"subject"`
	To               string `json:"to"`
	ReplyTo          string `json:"replyTo"`
	SessionID        string `json:"sessionId"` // the AMQP group-id
	ReplyToSessionID string `json:"replyToSessionId"`
	PartitionKey     string `json:"partitionKey"`
	TimeToLiveMs     int64  `json:"timeToLiveMs"`
	// ApplicationProperties holds JSON values: numbers as json.Number, timestamps as
	// RFC 3339 text, binary as base64 text. ApplicationPropertyTypes names each value's
	// AMQP type ("string", "long", "int", "boolean", "timestamp", ...).
	ApplicationProperties    map[string]any    `json:"applicationProperties"`
	ApplicationPropertyTypes map[string]string `json:"applicationPropertyTypes"`
	// BodyType is "data" (what the SDK's Message.Body sends), "value" or "sequence".
	BodyType string `json:"bodyType"`
	Body     []byte `json:"body"`  // the Data sections, joined
	Value    any    `json:"value"` // the AmqpValue body, when BodyType is "value"
	Size     int    `json:"size"`  // encoded bytes as sent
	// State is active, scheduled, locked, completed, deferred, deadlettered or cancelled;
	// on a topic, published (copied to each subscription); duplicate when duplicate detection
	// dropped it.
	State string `json:"state"`
	// DeliveryCount is the SDK's DeliveryCount at the latest delivery, 0 if never delivered.
	DeliveryCount              int        `json:"deliveryCount"`
	EnqueuedTime               time.Time  `json:"enqueuedTime"`
	ScheduledEnqueueTime       *time.Time `json:"scheduledEnqueueTime"`
	LockedUntil                *time.Time `json:"lockedUntil"`
	DeadLetterReason           *string    `json:"deadLetterReason"`
	DeadLetterErrorDescription *string    `json:"deadLetterErrorDescription"`
}

// StartServiceBus starts the stand-in on free loopback ports and kills it when the test
// ends. It fails the test when node or node_modules/rhea is missing.
func StartServiceBus(t testing.TB, opts ...SBOption) *ServiceBus {
	t.Helper()
	NodeModules(t)
	s := &ServiceBus{
		state: filepath.Join(t.TempDir(), "servicebus-standin-state.json"),
		http:  &http.Client{Timeout: 5 * time.Second},
	}
	for _, o := range opts {
		o(&s.cfg)
	}
	t.Cleanup(func() {
		if out, crashed := s.crashed(); crashed {
			t.Errorf("servicebus stand-in exited by itself during the test: %s", out)
		}
		s.Kill()
	})
	if err := s.start(); err != nil {
		t.Fatalf("servicebus stand-in: %v", err)
	}
	return s
}

// Stop shuts the stand-in down gracefully: it saves its messages (not its locks) for
// Restart. Stopping a stopped stand-in does nothing.
func (s *ServiceBus) Stop() {
	s.halt(os.Interrupt)
}

// Kill ends the stand-in at once with SIGKILL, as a crash would. Restart after Kill starts
// with the entities from the options and no messages.
func (s *ServiceBus) Kill() {
	if s.halt(os.Kill) {
		_ = os.Remove(s.state)
	}
}

// Restart starts a stopped or killed stand-in again on the same ports. After Stop it has
// every message it had, with locked messages available again.
func (s *ServiceBus) Restart(t testing.TB) {
	t.Helper()
	if err := s.start(); err != nil {
		t.Fatalf("servicebus stand-in: restart on port %d: %v", s.AMQPPort, err)
	}
}

// Messages returns every message ever sent to an entity ("orders",
// "orders/$deadletterqueue", "events" for a topic, "events/subscriptions/audit"), oldest
// first, whatever its state. Names are case-insensitive. It fails the test when the
// entity does not exist.
func (s *ServiceBus) Messages(t testing.TB, entity string) []SBMessage {
	t.Helper()
	msgs, err := s.messages(entity)
	if err != nil {
		t.Fatalf("servicebus stand-in: messages of %q: %v", entity, err)
	}
	return msgs
}

// WaitMessages waits until an entity holds at least n messages and returns them all. It
// fails the test at the timeout, listing what did arrive.
func (s *ServiceBus) WaitMessages(t testing.TB, entity string, n int, timeout time.Duration) []SBMessage {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msgs, err := s.messages(entity)
		if err == nil && len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			if err != nil {
				t.Fatalf("servicebus stand-in: waiting for %d messages on %q: %v", n, entity, err)
			}
			t.Fatalf("servicebus stand-in: %d of %d messages on %q after %s", len(msgs), n, entity, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// CreateEntity creates a queue or a topic subscription while the stand-in runs, in the
// syntax of WithEntities.
func (s *ServiceBus) CreateEntity(t testing.TB, name string) {
	t.Helper()
	u := s.sideChannel("/entities") + "?name=" + url.QueryEscape(name)
	resp, err := s.http.Post(u, "application/json", nil)
	if err != nil {
		t.Fatalf("servicebus stand-in: create %q: %v", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("servicebus stand-in: create %q: %s: %s", name, resp.Status, body)
	}
}

// Output is what the stand-in wrote to stderr: crashes, and with WithVerbose refused links.
func (s *ServiceBus) Output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.output == nil {
		return ""
	}
	return s.output.String()
}

func (s *ServiceBus) sideChannel(path string) string {
	return "http://127.0.0.1:" + strconv.Itoa(s.HTTPPort) + path
}

func (s *ServiceBus) messages(entity string) ([]SBMessage, error) {
	resp, err := s.http.Get(s.sideChannel("/messages") + "?entity=" + url.QueryEscape(entity))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read side channel: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("side channel: %s: %s", resp.Status, body)
	}
	var out struct {
		Messages []SBMessage `json:"messages"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // application properties may be 64-bit integers
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("decode side channel: %w", err)
	}
	return out.Messages, nil
}

func (s *ServiceBus) args() []string {
	script := filepath.Join(RepoRoot(), "test", "servicebus-standin", "main.js")
	args := []string{script,
		"--port", strconv.Itoa(s.AMQPPort),
		"--http-port", strconv.Itoa(s.HTTPPort),
		"--state", s.state,
		"--exit-with-stdin",
	}
	if len(s.cfg.entities) > 0 {
		args = append(args, "--entities", strings.Join(s.cfg.entities, ","))
	}
	if len(s.cfg.topics) > 0 {
		args = append(args, "--topics", strings.Join(s.cfg.topics, ","))
	}
	if s.cfg.autoCreate {
		args = append(args, "--auto-create")
	}
	if s.cfg.lockDuration > 0 {
		args = append(args, "--lock-duration", strconv.FormatInt(s.cfg.lockDuration.Milliseconds(), 10)+"ms")
	}
	if s.cfg.maxDeliveryCount > 0 {
		args = append(args, "--max-delivery-count", strconv.Itoa(s.cfg.maxDeliveryCount))
	}
	if s.cfg.maxMessageSize > 0 {
		args = append(args, "--max-message-size", strconv.Itoa(s.cfg.maxMessageSize))
	}
	if len(s.cfg.duplicates) > 0 {
		args = append(args, "--duplicate-detection", strings.Join(s.cfg.duplicates, ","))
	}
	if s.cfg.duplicateWindow > 0 {
		args = append(args, "--duplicate-detection-window", strconv.FormatInt(s.cfg.duplicateWindow.Milliseconds(), 10)+"ms")
	}
	if s.cfg.verbose {
		args = append(args, "--verbose")
	}
	return args
}

func (s *ServiceBus) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("already running")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return fmt.Errorf("node is not installed: %w", err)
	}
	cmd := exec.Command(node, s.args()...)
	cmd.Dir = RepoRoot()
	out := &processOutput{}
	first := &firstLine{line: make(chan string, 1), rest: out}
	cmd.Stdout, cmd.Stderr = first, out
	// The stand-in exits when this pipe closes, so it never outlives a test binary that
	// died before its cleanup ran.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("stdin pipe: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start node: %w", err)
	}
	lines := first.line
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()

	var ports struct{ AMQP, HTTP int }
	select {
	case line := <-lines:
		if err := json.Unmarshal([]byte(line), &ports); err != nil || ports.AMQP == 0 {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("unexpected first line %q: %s", line, out.String())
		}
	case <-exited:
		return fmt.Errorf("exited while starting: %s", out.String())
	case <-time.After(standinStartTimeout):
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("no ports printed after %s: %s", standinStartTimeout, out.String())
	}
	s.AMQPPort, s.HTTPPort = ports.AMQP, ports.HTTP
	s.ConnectionString = "Endpoint=sb://127.0.0.1:" + strconv.Itoa(ports.AMQP) +
		";SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true"
	s.cmd, s.stdin, s.exited, s.output = cmd, stdin, exited, out
	return nil
}

// crashed reports whether the stand-in exited without Stop or Kill, with its output.
func (s *ServiceBus) crashed() (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return "", false
	}
	select {
	case <-s.exited:
		return s.cmd.ProcessState.String() + ": " + s.output.String(), true
	default:
		return "", false
	}
}

// halt signals the process and waits for it; it reports whether one was running.
func (s *ServiceBus) halt(sig os.Signal) bool {
	s.mu.Lock()
	cmd, stdin, exited := s.cmd, s.stdin, s.exited
	s.cmd, s.stdin = nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return false
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
	_ = stdin.Close()
	return true
}

// firstLine hands the first line the stand-in prints (its ports) to start, and the rest of
// its stdout to the output log.
type firstLine struct {
	mu   sync.Mutex
	buf  []byte
	sent bool
	line chan string
	rest io.Writer
}

func (f *firstLine) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sent {
		return f.rest.Write(p)
	}
	f.buf = append(f.buf, p...)
	if i := bytes.IndexByte(f.buf, '\n'); i >= 0 {
		f.sent = true
		f.line <- string(f.buf[:i])
		_, _ = f.rest.Write(f.buf[i+1:])
		f.buf = nil
	} else if len(f.buf) > 64<<10 {
		f.sent = true
		f.line <- string(f.buf)
	}
	return len(p), nil
}
