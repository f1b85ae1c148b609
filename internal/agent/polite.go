package agent

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/picoflow/picoflow/internal/upload"
)

// RateWindow is one line of a rate schedule: from Start to End (local
// time of day; End before Start wraps past midnight) the upload rate is
// Rate bytes per second (0: unlimited).
type RateWindow struct {
	Start, End time.Duration // since midnight
	Rate       float64
	Text       string
}

// ParseSchedule reads rate schedule lines: "22:00-06:00 unlimited",
// "08:00-18:00 200Mbit".
func ParseSchedule(lines []string) ([]RateWindow, error) {
	var out []RateWindow
	for _, ln := range lines {
		span, rate, ok := strings.Cut(strings.TrimSpace(ln), " ")
		a, b, ok2 := strings.Cut(span, "-")
		if !ok || !ok2 {
			return nil, fmt.Errorf("rate schedule %q: want HH:MM-HH:MM RATE, e.g. 22:00-06:00 unlimited", ln)
		}
		clock := func(s string) (time.Duration, error) {
			t, err := time.Parse("15:04", s)
			if err != nil {
				return 0, fmt.Errorf("rate schedule %q: %q is not a time of day (HH:MM)", ln, s)
			}
			return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
		}
		w := RateWindow{Text: strings.TrimSpace(ln)}
		var err error
		if w.Start, err = clock(a); err != nil {
			return nil, err
		}
		if w.End, err = clock(b); err != nil {
			return nil, err
		}
		if w.Rate, err = upload.ParseRate(rate); err != nil {
			return nil, fmt.Errorf("rate schedule %q: %w", ln, err)
		}
		out = append(out, w)
	}
	return out, nil
}

// RateAt is the rate a schedule sets at a time, or def outside its
// windows; the first window that holds the time wins.
func RateAt(sched []RateWindow, def float64, t time.Time) (float64, string) {
	tod := time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute + time.Duration(t.Second())*time.Second
	for _, w := range sched {
		in := w.Start <= tod && tod < w.End
		if w.End <= w.Start { // past midnight
			in = tod >= w.Start || tod < w.End
		}
		if in {
			return w.Rate, w.Text
		}
	}
	return def, ""
}

// follow keeps the limiter at the schedule's rate and records the agent's
// rates for `picoflow-agent status`, every few seconds.
func (a *Agent) follow(ctx context.Context) {
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		rate, window := RateAt(a.schedule, a.maxRate, time.Now())
		if rate != a.limiter.Rate() {
			a.limiter.SetRate(rate)
			a.log.Info("upload rate", "cap", upload.FormatRate(rate), "schedule", window)
		}
		if err := a.ledger.setState(ctx, map[string]string{
			"rate_cap": fmt.Sprint(rate), "rate_sent": fmt.Sprintf("%.0f", a.limiter.Sent()), "schedule": window, "updated": time.Now().UTC().Format(time.RFC3339),
		}); err != nil && ctx.Err() == nil {
			a.log.Warn("record the agent's rate", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// setState records key/value facts about the running agent in the ledger.
func (l *ledger) setState(ctx context.Context, kv map[string]string) error {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for k, v := range kv {
		if _, err := tx.ExecContext(ctx, `INSERT INTO agent_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, k, v); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// Rates is what `picoflow-agent status` shows of the uploads' pace.
type Rates struct {
	Cap, Sent float64 // bytes/s; Cap 0: unlimited
	Schedule  string  // the schedule window in force, if any
	Updated   time.Time
	// Waiting is the bytes of the files not sent yet; ETA the time they
	// take at the measured rate (or the cap).
	Waiting int64
	Files   int
	ETA     time.Duration
}

// ReadRates reads an agent's rates and queue from its ledger.
func ReadRates(ctx context.Context, path string) (Rates, error) {
	var r Rates
	l, err := openLedger(ctx, path)
	if err != nil {
		return r, err
	}
	defer l.close()
	rows, err := l.db.QueryContext(ctx, `SELECT key, value FROM agent_state`)
	if err != nil {
		return r, err
	}
	for rows.Next() {
		var k, v string
		if rows.Scan(&k, &v) != nil {
			continue
		}
		switch k {
		case "rate_cap":
			fmt.Sscan(v, &r.Cap)
		case "rate_sent":
			fmt.Sscan(v, &r.Sent)
		case "schedule":
			r.Schedule = v
		case "updated":
			r.Updated, _ = time.Parse(time.RFC3339, v)
		}
	}
	rows.Close()
	var waiting sql.NullInt64
	if err := l.db.QueryRowContext(ctx, `SELECT count(*), sum(size) FROM file WHERE state IN (?, ?, ?)`, StateSeen, StateReady, StateUploading).Scan(&r.Files, &waiting); err != nil {
		return r, err
	}
	r.Waiting = waiting.Int64
	pace := r.Sent
	if pace < 1 {
		pace = r.Cap
	}
	if pace > 0 && r.Waiting > 0 {
		r.ETA = time.Duration(float64(r.Waiting) / pace * float64(time.Second))
	}
	return r, nil
}
