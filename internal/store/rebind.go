package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/stdlib"
)

// The application's SQL uses ? placeholders (SQLite's); PostgreSQL wants
// $1, $2, .... The "picoflow-pgx" driver wraps pgx's database/sql driver
// and numbers the ? of the application's statements. River's own
// statements already use $n and contain jsonb's ? operator, so a statement
// with a $ in it is passed through untouched.
func init() {
	sql.Register("picoflow-pgx", &rebindDriver{stdlib.GetDefaultDriver().(driver.DriverContext)})
}

func rebind(q string) string {
	if !strings.Contains(q, "?") || strings.Contains(q, "$") {
		return q
	}
	var b strings.Builder
	n := 0
	inQuote := false
	for _, r := range q {
		switch {
		case r == '\'':
			inQuote = !inQuote
			b.WriteRune(r)
		case r == '?' && !inQuote:
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

type rebindDriver struct{ d driver.DriverContext }

func (r *rebindDriver) Open(name string) (driver.Conn, error) {
	c, err := r.d.OpenConnector(name)
	if err != nil {
		return nil, err
	}
	return (&rebindConnector{c, r}).Connect(context.Background())
}

func (r *rebindDriver) OpenConnector(name string) (driver.Connector, error) {
	c, err := r.d.OpenConnector(name)
	if err != nil {
		return nil, err
	}
	return &rebindConnector{c, r}, nil
}

type rebindConnector struct {
	c driver.Connector
	d *rebindDriver
}

func (c *rebindConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.c.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &rebindConn{conn}, nil
}

func (c *rebindConnector) Driver() driver.Driver { return c.d }

// rebindConn forwards everything to pgx's connection, rewriting the text
// of statements.
type rebindConn struct{ driver.Conn }

func (c *rebindConn) Prepare(q string) (driver.Stmt, error) { return c.Conn.Prepare(rebind(q)) }

func (c *rebindConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	return c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, rebind(q))
}

func (c *rebindConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	return c.Conn.(driver.ExecerContext).ExecContext(ctx, rebind(q), args)
}

func (c *rebindConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	return c.Conn.(driver.QueryerContext).QueryContext(ctx, rebind(q), args)
}

func (c *rebindConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

// The optional interfaces: forwarded where pgx has them, the
// database/sql default otherwise.

func (c *rebindConn) CheckNamedValue(v *driver.NamedValue) error {
	if n, ok := c.Conn.(driver.NamedValueChecker); ok {
		return n.CheckNamedValue(v)
	}
	return driver.ErrSkip
}

func (c *rebindConn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *rebindConn) IsValid() bool {
	if v, ok := c.Conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

func (c *rebindConn) Ping(ctx context.Context) error {
	if p, ok := c.Conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

// Raw gives River and pgx-aware code the underlying connection.
func (c *rebindConn) Raw() driver.Conn { return c.Conn }
