package odata

import (
	"hash/fnv"
	"math/bits"
	"unique"
)

// RowCache holds the column values read from one row, so that many filters matched against the
// same row (a route file's, for one event) look each column up and convert it once: route files
// test the same few columns (the amount, the state, the stage) in filter after filter.
//
// Reset binds it to a row; MatchCached then reads through it. A RowCache is not safe for
// concurrent use, and is large (a few KB): keep one per goroutine, or in a sync.Pool.
type RowCache struct {
	row    map[string]any
	filled uint64 // bit i: slots[i] holds a column of row
	slots  [cacheSlots]cacheSlot
}

type cacheSlot struct {
	name unique.Handle[string]
	v    val
}

// cacheSlots is the size of the cache's open-addressing table; cacheProbes bounds the search
// for a column's slot. A column that finds no free slot is read from the row every time, so a
// filter set with more columns than this is still matched correctly, only without the saving.
const (
	cacheSlots  = 64
	cacheProbes = 4
)

// Reset binds c to row and forgets the previous row's values (Reset(nil) before putting c
// in a pool keeps it from holding on to the row).
func (c *RowCache) Reset(row map[string]any) {
	for f := c.filled; f != 0; f &= f - 1 {
		c.slots[bits.TrailingZeros64(f)] = cacheSlot{}
	}
	c.row, c.filled = row, 0
}

// MatchCached is Match on the row c was last Reset to (c must not be nil).
func (f *Filter) MatchCached(c *RowCache) bool {
	return f.root.test(input{row: c.row, cache: c}) == lTrue
}

// input is what a node evaluates against: a row, and optionally a cache of its columns.
type input struct {
	row   map[string]any
	cache *RowCache // nil: read the row directly
}

// column is a reference to a column by name, with its home slot in a RowCache. handle makes
// telling whether a slot holds the column one pointer comparison, whichever filter the name
// was compiled in.
type column struct {
	name   string
	handle unique.Handle[string]
	slot   uint8
}

func newColumn(name string) column {
	h := fnv.New32a()
	h.Write([]byte(name))
	return column{name: name, handle: unique.Make(name), slot: uint8(h.Sum32() % cacheSlots)}
}

// read returns the column's value; a missing column is null, as a column absent from the event
// is.
func (in input) read(col column) val {
	var buf val
	return *in.column(col, &buf)
}

// column is read without the copy: it points into the cache when in has one and the column has a
// slot there, and otherwise to buf, which it fills.
func (in input) column(col column, buf *val) *val {
	if in.cache != nil {
		if v := in.cache.lookup(col); v != nil {
			return v
		}
	}
	*buf = readRow(in.row, col.name)
	return buf
}

// lookup returns the column's cached value, reading it on first use, or nil when the column
// finds no free slot.
func (c *RowCache) lookup(col column) *val {
	for i := range uint8(cacheProbes) {
		at := (col.slot + i) % cacheSlots
		s := &c.slots[at]
		if c.filled&(1<<at) == 0 {
			s.name, s.v = col.handle, readRow(c.row, col.name)
			c.filled |= 1 << at
			return &s.v
		}
		if s.name == col.handle {
			return &s.v
		}
	}
	return nil
}

func readRow(row map[string]any, name string) val {
	x, ok := row[name]
	if !ok {
		return unknown
	}
	return fromRow(x)
}
