package dataverse

import (
	"encoding/json"
	"unsafe"
)

// boxes puts the strings and numbers of one event's rows into interfaces without an allocation
// each. Storing a string in an `any` copies its header to the heap, 16 bytes apiece; a decoded
// event fills its rows with some fifty of them, a quarter of all the allocations of a request.
// Here the headers go into chunks of boxChunk, and each interface points at its slot, as the
// runtime's own would point at its copy (https://go.dev/src/runtime/iface.go, convTstring): the
// value is the same to every reader, and a chunk lives as long as any row holds one of its
// interfaces. A slot is written once, before its interface exists, and never again: a chunk is
// never reused, not even by the next decode of a pooled decoder (see reset).
type boxes struct {
	chunk []string
}

// boxChunk is how many values one chunk holds: the project's typical Update fills about fifty.
const boxChunk = 64

// eface is the layout of an `any`: its dynamic type and a pointer to its value.
type eface struct {
	typ, data unsafe.Pointer
}

func typeOf(v any) unsafe.Pointer { return (*eface)(unsafe.Pointer(&v)).typ }

var (
	stringType = typeOf("")
	numberType = typeOf(json.Number(""))
)

// str returns s as an `any` holding a string.
func (b *boxes) str(s string) any { return b.put(s, stringType) }

// num returns s as an `any` holding a json.Number (a string type: the same layout).
func (b *boxes) num(s string) any { return b.put(s, numberType) }

// strOrNil is str, or nil for "".
func (b *boxes) strOrNil(s string) any {
	if s == "" {
		return nil
	}
	return b.str(s)
}

func (b *boxes) put(s string, typ unsafe.Pointer) any {
	if len(b.chunk) == cap(b.chunk) {
		b.chunk = make([]string, 0, boxChunk)
	}
	b.chunk = append(b.chunk, s)
	return *(*any)(unsafe.Pointer(&eface{typ: typ, data: unsafe.Pointer(&b.chunk[len(b.chunk)-1])}))
}

// reset lets go of the current chunk, whose slots the last event's rows point at: the next
// value starts a chunk of its own.
func (b *boxes) reset() { b.chunk = nil }
