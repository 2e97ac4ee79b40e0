package dataverse

import "sync"

// Building "x@OData.Community.Display.V1.FormattedValue" and
// "_x_value@Microsoft.Dynamics.CRM.lookuplogicalname" costs an allocation per column per event.
// The same tables bring the same columns, so the built keys are kept, process-wide, up to a
// bound that a hostile stream of made-up column names cannot push memory past.

const maxCachedKeys = 1 << 14

type keyCache struct {
	mu   sync.RWMutex
	keys map[string]string // column -> built key; the map key is a slice of the value
}

var (
	formattedKeys = keyCache{keys: map[string]string{}}
	lookupKeys    = keyCache{keys: map[string]string{}}
)

// formattedKey returns col + formattedSuffix.
func formattedKey(col string) string {
	if k, ok := formattedKeys.get(col); ok {
		return k
	}
	k := col + formattedSuffix
	// The cached column name is a prefix of the new string, not of the body it came from.
	formattedKeys.put(k[:len(col)], k)
	return k
}

// lookupKey returns "_" + col + lookupSuffix; its first len(col)+7 bytes are "_col_value".
func lookupKey(col string) string {
	if k, ok := lookupKeys.get(col); ok {
		return k
	}
	k := "_" + col + lookupSuffix
	lookupKeys.put(k[1:1+len(col)], k)
	return k
}

func (c *keyCache) get(col string) (string, bool) {
	c.mu.RLock()
	k, ok := c.keys[col]
	c.mu.RUnlock()
	return k, ok
}

func (c *keyCache) put(col, k string) {
	c.mu.Lock()
	if len(c.keys) < maxCachedKeys {
		c.keys[col] = k
	}
	c.mu.Unlock()
}
