package replicas_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/picoflow/picoflow/internal/replicas"
)

// deadURL is the address of a closed listener: connections are refused.
func deadURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String()
	ln.Close()
	return u
}

func TestDoMovesOnWhenUnreachable(t *testing.T) {
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/busy" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	defer live.Close()
	dead := deadURL(t)
	s, err := replicas.Parse(dead+"/", " "+live.URL)
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 2 || s.Current() != dead {
		t.Fatalf("parsed %s, current %s", s, s.Current())
	}
	get := func(path string) func(string) error {
		return func(base string) error {
			resp, err := http.Get(base + path)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("%s", resp.Status)
			}
			return nil
		}
	}
	var tried []string
	err = s.Do(context.Background(), func(base string) error {
		tried = append(tried, base)
		return get("/")(base)
	})
	if err != nil || len(tried) != 2 || tried[1] != live.URL || s.Current() != live.URL {
		t.Fatalf("err %v, tried %v, current %s", err, tried, s.Current())
	}
	// An answer, even an error, is not a reason to move on.
	tried = nil
	if err := s.Do(context.Background(), func(base string) error { tried = append(tried, base); return get("/busy")(base) }); err == nil || len(tried) != 1 {
		t.Fatalf("404: err %v, tried %v", err, tried)
	}
	// ErrUnavailable moves on; all replicas failing returns the last error.
	tried = nil
	err = s.Do(context.Background(), func(base string) error {
		tried = append(tried, base)
		return fmt.Errorf("503: %w", replicas.ErrUnavailable)
	})
	if !errors.Is(err, replicas.ErrUnavailable) || len(tried) != 2 || tried[0] != live.URL || tried[1] != dead {
		t.Fatalf("unavailable: err %v, tried %v", err, tried)
	}
	// A cancelled request stays where it is.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cur := s.Current()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, cur, nil)
	_, rerr := http.DefaultClient.Do(req)
	if replicas.Unreachable(rerr) {
		t.Fatalf("a cancelled request counted as unreachable: %v", rerr)
	}
	if err := s.Do(ctx, func(string) error { return rerr }); err == nil || s.Current() != cur {
		t.Fatalf("cancelled: err %v, moved to %s", err, s.Current())
	}
}

func TestFailedMovesOnce(t *testing.T) {
	s, _ := replicas.Parse("http://a,http://b,http://c")
	if got := s.Failed("http://a", nil); got != "http://b" {
		t.Fatalf("after a failed: %s", got)
	}
	// A second report of the same replica (another goroutine saw it too)
	// does not skip b.
	if got := s.Failed("http://a", nil); got != "http://b" {
		t.Fatalf("after a failed twice: %s", got)
	}
	s.Failed("http://b", nil)
	if got := s.Failed("http://c", nil); got != "http://a" {
		t.Fatalf("wrap-around: %s", got)
	}
}

func TestRebase(t *testing.T) {
	s, _ := replicas.Parse("https://a.example/pf,https://b.example:8443/pf")
	for _, c := range [][3]string{
		{"https://a.example/pf/files/abc", "https://b.example:8443/pf", "https://b.example:8443/pf/files/abc"},
		{"https://b.example:8443/pf/files/abc?x=1", "https://a.example/pf", "https://a.example/pf/files/abc?x=1"},
		{"http://old.example/files/abc", "https://a.example", "https://a.example/files/abc"},
		{"not a url", "https://a.example", "not a url"},
	} {
		if got := s.Rebase(c[0], c[1]); got != c[2] {
			t.Errorf("Rebase(%s, %s) = %s, want %s", c[0], c[1], got, c[2])
		}
	}
}

func TestParseRejects(t *testing.T) {
	for _, l := range []string{"", " , ", "ftp://x", "a.example", "http://"} {
		if _, err := replicas.Parse(l); err == nil {
			t.Errorf("Parse(%q) accepted", l)
		}
	}
}
