package tusserver

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/tus/tusd/v2/pkg/handler"
	"github.com/tus/tusd/v2/pkg/memorylocker"
)

// PostgresLocker locks uploads across servers that share a PostgreSQL
// database and an upload directory: while a request writes an upload, its
// server holds a session advisory lock on the upload's ID on a connection
// of its own. PostgreSQL drops the lock when that session ends, so a server
// killed mid-write leaves nothing stale behind. Within one server an
// in-memory lock comes first, which also asks a stalled holder to let go.
type PostgresLocker struct {
	pool  *pgxpool.Pool
	local *memorylocker.MemoryLocker
	// Poll is how often a waiting request retries the advisory lock
	// (default 100 ms).
	Poll time.Duration
}

// NewPostgresLocker returns a locker taking its connections from pool.
func NewPostgresLocker(pool *pgxpool.Pool) *PostgresLocker {
	return &PostgresLocker{pool: pool, local: memorylocker.New(), Poll: 100 * time.Millisecond}
}

// NewLock implements handler.Locker.
func (l *PostgresLocker) NewLock(id string) (handler.Lock, error) {
	local, err := l.local.NewLock(id)
	if err != nil {
		return nil, err
	}
	return &pgLock{l: l, id: id, local: local}, nil
}

type pgLock struct {
	l     *PostgresLocker
	id    string
	local handler.Lock
	conn  *pgxpool.Conn
}

const lockKey = `hashtextextended('picoflow upload ' || $1, 0)`

// Lock waits for the upload's lock until ctx ends (handler.ErrLockTimeout).
func (k *pgLock) Lock(ctx context.Context, requestRelease func()) error {
	if err := k.local.Lock(ctx, requestRelease); err != nil {
		return err
	}
	conn, err := k.l.pool.Acquire(ctx)
	if err != nil {
		k.local.Unlock()
		if ctx.Err() != nil {
			return handler.ErrLockTimeout
		}
		return fmt.Errorf("upload lock: %w", err)
	}
	for {
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(`+lockKey+`)`, k.id).Scan(&ok); err != nil {
			conn.Release()
			k.local.Unlock()
			if ctx.Err() != nil {
				return handler.ErrLockTimeout
			}
			return fmt.Errorf("upload lock: %w", err)
		}
		if ok {
			k.conn = conn
			return nil
		}
		select {
		case <-ctx.Done():
			conn.Release()
			k.local.Unlock()
			return handler.ErrLockTimeout
		case <-time.After(k.l.Poll):
		}
	}
}

// Unlock releases the lock; if PostgreSQL cannot be told, the session is
// closed, which releases it too.
func (k *pgLock) Unlock() error {
	if k.conn == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var released bool
	err := k.conn.QueryRow(ctx, `SELECT pg_advisory_unlock(`+lockKey+`)`, k.id).Scan(&released)
	if err != nil || !released {
		k.conn.Conn().Close(ctx)
	}
	k.conn.Release()
	k.conn = nil
	return k.local.Unlock()
}
