package journal

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

// DefaultRetention is how long entries are kept when the setting is not given.
const DefaultRetention = 30 * 24 * time.Hour

// Purge deletes the entries written before now minus retention and says how many it deleted.
// It reads the table by the service's Timestamp (the write time), which every copy has, in
// pages, and deletes by partition in batches; it stops when ctx ends, and the next run goes on.
// A journal scan is the price of keys made for the lookups; the purge runs hourly at most,
// off every request's path.
func (j *Journal) Purge(ctx context.Context, now time.Time, retention time.Duration) (int, error) {
	if retention <= 0 {
		return 0, nil
	}
	cutoff := now.Add(-retention).UTC().Format("2006-01-02T15:04:05Z")
	filter := "Timestamp lt datetime'" + cutoff + "'"
	sel := "PartitionKey,RowKey"
	pager := j.client.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &filter, Select: &sel})
	deleted := 0
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			if isCode(err, aztables.TableNotFound) {
				return deleted, nil
			}
			return deleted, fmt.Errorf("%w: purge: %v", ErrUnavailable, err)
		}
		byPK := map[string][]aztables.TransactionAction{}
		var order []string
		for _, raw := range page.Entities {
			var k struct{ PartitionKey, RowKey string }
			if json.Unmarshal(raw, &k) != nil {
				continue
			}
			if _, ok := byPK[k.PartitionKey]; !ok {
				order = append(order, k.PartitionKey)
			}
			body, _ := json.Marshal(k)
			byPK[k.PartitionKey] = append(byPK[k.PartitionKey], aztables.TransactionAction{ActionType: aztables.TransactionTypeDelete, Entity: body})
		}
		for _, pk := range order {
			acts := byPK[pk]
			for len(acts) > 0 {
				n := min(len(acts), maxBatch)
				cctx, cancel := context.WithTimeout(ctx, j.cfg.CallTimeout)
				_, err := j.client.SubmitTransaction(cctx, acts[:n], nil)
				cancel()
				if err != nil {
					return deleted, fmt.Errorf("%w: purge partition %s: %v", ErrUnavailable, pk, err)
				}
				deleted += n
				acts = acts[n:]
			}
		}
	}
	return deleted, nil
}
