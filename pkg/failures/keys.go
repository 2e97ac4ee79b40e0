package failures

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/dvrouter/dvrouter/pkg/tables"
)

// shardCount is the number of partitions failures are spread over. Ids and lists depend on it:
// changing it needs a migration.
const shardCount = 16

// keys locate one failure's main entity.
type keys struct {
	shard int
	pk    string // "s" + 2 hex digits
	rk    string // "r" + 19 digits + "-" + 32 hex
}

const (
	invDigits  = tables.InvertedTimeDigits
	hashHex    = 32 // hex digits of the identity hash kept in keys
	idLen      = 2 + 1 + invDigits + 1 + hashHex
	rowPrefix  = "r" // main entities
	rowEnd     = "s" // first RowKey after every main entity
	chunkStart = "x" // spilled payload chunks
)

// identity is what makes two records the same failure.
func identity(f Failure) (string, error) {
	if f.Consumer != "" {
		if f.EventID == "" {
			return "", fmt.Errorf("%w: event id is empty", ErrInvalid)
		}
		return "d\x00" + f.EventID + "\x00" + f.Consumer, nil
	}
	if f.Kind == KindReread {
		return "r\x00" + f.EventID, nil
	}
	// A poison message has no event id to speak of: the queue's MessageId identifies it, and a
	// redelivered message keeps it. Without one the bytes themselves are the identity.
	if f.MessageID != "" {
		return "p\x00m\x00" + f.MessageID, nil
	}
	sum := sha256.Sum256(f.Payload)
	return "p\x00h\x00" + hex.EncodeToString(sum[:]), nil
}

func keysFor(ident string, occurred time.Time) keys {
	h := sha256.Sum256([]byte(ident))
	shard := int(h[0]) % shardCount
	return keys{
		shard: shard,
		pk:    partitionKey(shard),
		rk:    rowPrefix + tables.InvertedTime(occurred) + "-" + hex.EncodeToString(h[:hashHex/2]),
	}
}

func partitionKey(shard int) string { return fmt.Sprintf("s%02x", shard) }

// id is the public id: the shard and the RowKey without its prefix.
func (k keys) id() string {
	return fmt.Sprintf("%02x-%s", k.shard, k.rk[len(rowPrefix):])
}

var errMalformedID = errors.New("malformed failure id")

// parseID checks an id strictly, so nothing odd reaches a query, and gives its keys.
func parseID(id string) (keys, error) {
	if len(id) != idLen || id[2] != '-' || id[3+invDigits] != '-' {
		return keys{}, errMalformedID
	}
	shard, err := strconv.ParseUint(id[:2], 16, 8)
	if err != nil || shard >= shardCount || !isLowerHex(id[:2]) {
		return keys{}, errMalformedID
	}
	for _, c := range id[3 : 3+invDigits] {
		if c < '0' || c > '9' {
			return keys{}, errMalformedID
		}
	}
	if !isLowerHex(id[4+invDigits:]) {
		return keys{}, errMalformedID
	}
	return keys{shard: int(shard), pk: partitionKey(int(shard)), rk: rowPrefix + id[3:]}, nil
}

func isLowerHex(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// idFromKeys turns stored keys back into a public id; ok is false for rows that are not main
// entities (which a list never asks for, but the data is not ours to trust).
func idFromKeys(pk, rk string) (string, bool) {
	if len(pk) != 3 || len(rk) != len(rowPrefix)+invDigits+1+hashHex {
		return "", false
	}
	id := pk[1:] + "-" + rk[len(rowPrefix):]
	if _, err := parseID(id); err != nil || pk[0] != 's' || rk[:len(rowPrefix)] != rowPrefix {
		return "", false
	}
	return id, true
}

// chunkPrefix is the RowKey prefix of the spilled chunks written with token.
func (k keys) chunkPrefix(token string) string {
	return chunkStart + k.rk[len(rowPrefix):] + "-" + token + "-"
}
