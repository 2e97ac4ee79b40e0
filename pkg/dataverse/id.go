package dataverse

import (
	"crypto/sha256"
	"encoding/binary"
	"strconv"

	"github.com/dvrouter/dvrouter/pkg/uuid"
)

// idVersion starts the hashed text; a change to the derivation changes it, so ids of one
// derivation never collide with another's.
const idVersion = "dvrouter-event-id/v1"

// eventID derives Event.ID from the fields that identify one plugin execution, so that the same
// Dataverse event delivered twice (a webhook retry, a Service Bus redelivery, a re-serialized
// copy with other key order or escaping) gets the same id, and two events get different ones.
//
// The input to SHA-256 is idVersion followed by these fields, each written as its length
// (unsigned varint) and its bytes, in this order:
//
//	OrganizationId, OperationId, CorrelationId, RequestId, OwningExtension.Id (the step),
//	MessageName, PrimaryEntityName, PrimaryEntityId, Stage, Depth, OperationCreatedOn
//
// GUIDs are lower-cased; a null or absent field is empty; Stage and Depth are decimal;
// OperationCreatedOn is the UTC instant in milliseconds (offset applied), decimal. The first 16
// bytes of the digest are printed as a lowercase UUID with the version nibble set to 8 (RFC 9562
// "custom") and the RFC 4122 variant bits, e.g. "3f2a9c1e-5b7d-8e4f-9a0b-1c2d3e4f5a6b".
//
// The step id is in the set because two steps registered on one message are two deliveries
// (each with its own consumers); Depth and Stage tell a plugin's own nested operation, which
// shares the correlation id, from the one that caused it.
func (c *context) eventID() string {
	var stack [512]byte
	b := append(stack[:0], idVersion...)
	put := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	putGUID := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		// Copied whole, then lowered in place: a byte-by-byte append checks capacity per byte.
		n := len(b)
		b = append(b, s...)
		for i := n; i < len(b); i++ {
			if c := b[i]; 'A' <= c && c <= 'Z' {
				b[i] = c + 'a' - 'A'
			}
		}
	}
	putGUID(c.orgID)
	putGUID(c.operationID)
	putGUID(c.correlationID)
	if c.requestID != nil {
		putGUID(*c.requestID)
	} else {
		put("")
	}
	putGUID(c.stepID)
	put(c.message)
	put(c.table)
	putGUID(c.recordID)
	put(strconv.Itoa(c.stage))
	put(strconv.Itoa(c.depth))
	if c.created != "" {
		var ms [20]byte
		put(string(strconv.AppendInt(ms[:0], c.createdMS, 10))) // put copies it: no allocation
	} else {
		put("")
	}
	return HashUUID(b)
}

// HashUUID is the id eventID and other derived ids print: the first 16 bytes of b's SHA-256 as
// a lowercase UUID with the version nibble set to 8 (RFC 9562 "custom") and the RFC 4122
// variant bits.
func HashUUID(b []byte) string {
	sum := sha256.Sum256(b)
	return uuid.Format([16]byte(sum[:16]), 8)
}
