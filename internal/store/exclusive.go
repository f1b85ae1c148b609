package store

import (
	"context"
	"time"
)

// Exclusive runs fn on one server at a time among those sharing the
// PostgreSQL database (the block scaler: two replicas must not both submit
// batch jobs). fn runs while this process holds a session advisory lock
// named name on a connection of its own, checked every retry; when that
// connection fails (the database restarted, a network cut, the session
// terminated) fn's context ends and the lock goes to another server. A
// server that does not hold the lock tries again every retry. On SQLite
// (one server) fn runs at once. A server that gets the lock waits two
// periods before it runs fn, so that a holder whose session was cut has
// noticed and stopped. Exclusive returns when ctx ends and fn has returned.
func (db *DB) Exclusive(ctx context.Context, name string, retry time.Duration, fn func(ctx context.Context)) {
	if db.Pgx == nil {
		fn(ctx)
		return
	}
	for ctx.Err() == nil {
		db.holdAndRun(ctx, name, retry, fn)
		select {
		case <-ctx.Done():
		case <-time.After(retry):
		}
	}
}

// exclusiveKey is the advisory lock of Exclusive's name ($1), one per
// schema: installations sharing a database do not exclude each other.
const exclusiveKey = `hashtextextended('picoflow exclusive ' || current_schema() || ' ' || $1, 0)`

// holdAndRun runs fn if it gets the lock, until fn returns or the lock's
// session fails.
func (db *DB) holdAndRun(ctx context.Context, name string, retry time.Duration, fn func(ctx context.Context)) {
	pc, err := db.Pgx.Acquire(ctx)
	if err != nil {
		return
	}
	var ok bool
	if err := pc.QueryRow(ctx, `SELECT pg_try_advisory_lock(`+exclusiveKey+`)`, name).Scan(&ok); err != nil || !ok {
		pc.Release()
		return
	}
	// The connection leaves the pool: closing it ends the session, which
	// is what releases the lock, whatever state the connection is in.
	conn := pc.Hijack()
	defer conn.Close(context.Background())
	// A previous holder whose session was cut stops at its next check
	// (within two periods: the tick, then a ping that may time out); start
	// after that, so the two never run at once.
	select {
	case <-ctx.Done():
		return
	case <-time.After(2 * retry):
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(fctx)
	}()
	tick := time.NewTicker(retry)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
			pctx, pcancel := context.WithTimeout(ctx, retry)
			err := conn.Ping(pctx)
			pcancel()
			if err != nil {
				cancel()
				<-done
				return
			}
		}
	}
}
