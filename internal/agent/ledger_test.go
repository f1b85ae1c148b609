package agent

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
)

// TestLedgerOpenedConcurrently: the agent and `picoflow-agent status`
// may open (and so migrate) a new ledger at the same moment.
func TestLedgerOpenedConcurrently(t *testing.T) {
	for round := range 5 {
		path := filepath.Join(t.TempDir(), "agent.db")
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() {
				l, err := openLedger(context.Background(), path)
				if err != nil {
					errs <- err
					return
				}
				var n int
				if err := l.db.QueryRow(`SELECT count(*) FROM pragma_table_info('file') WHERE name = 'alerts'`).Scan(&n); err != nil || n != 1 {
					errs <- err
				}
				l.close()
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: %v", round, err)
		}
	}
}
