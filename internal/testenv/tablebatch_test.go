package testenv_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/tables"
)

// In front of an Azurite the stand-in takes the transactions and passes the rest on: a table
// created and an entity written through it are in Azurite, a transaction is not.
func TestTableBatchSink_PassesWhatIsNotATransactionToItsUpstream(t *testing.T) {
	az := testenv.StartAzurite(t)
	sink := testenv.StartTableBatchSinkTo(t, az)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	through, err := tables.Account{ConnectionString: sink.ConnectionString()}.Service(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := through.CreateTable(ctx, "Passed", nil); err != nil {
		t.Fatalf("create the table through the stand-in: %v", err)
	}
	one, _ := json.Marshal(map[string]string{"PartitionKey": "p", "RowKey": "one"})
	if _, err := through.NewClient("Passed").UpsertEntity(ctx, one, nil); err != nil {
		t.Fatalf("write an entity through the stand-in: %v", err)
	}
	two, _ := json.Marshal(map[string]string{"PartitionKey": "p", "RowKey": "two"})
	w, err := tables.Account{ConnectionString: sink.ConnectionString()}.BatchWriter("Passed", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.InsertOrReplace(ctx, []tables.Entity{{PartitionKey: "p", RowKey: "two", JSON: two}}); err != nil {
		t.Fatalf("a transaction to the stand-in: %v", err)
	}

	direct, err := tables.Account{ConnectionString: az.ConnectionString()}.Service(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := direct.NewClient("Passed")
	if _, err := c.GetEntity(ctx, "p", "one", nil); err != nil {
		t.Errorf("the entity written through the stand-in is not in Azurite: %v", err)
	}
	if _, err := c.GetEntity(ctx, "p", "two", nil); err == nil {
		t.Error("the transaction's entity reached Azurite: the stand-in should have kept it")
	} else if !isStatus(err, http.StatusNotFound) {
		t.Errorf("reading the transaction's entity: %v", err)
	}
	if batches, ops, err := sink.Counts(); err != nil || batches != 1 || ops != 1 {
		t.Errorf("counts %d, %d, %v; want 1 transaction of 1 entity", batches, ops, err)
	}
}

// The stand-in's process ends with Stop.
func TestTableBatchSink_StopEndsItsProcess(t *testing.T) {
	sink := testenv.StartTableBatchSink(t)
	if _, _, err := sink.Counts(); err != nil {
		t.Fatal(err)
	}
	sink.Stop()
	if _, _, err := sink.Counts(); err == nil {
		t.Error("the stand-in still answers after Stop")
	}
}

func isStatus(err error, status int) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == status
}
