package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"
)

var errBad = errors.New("bad thing")

var reg = NewRegistry()

func registerTestFuncs() {
	reg.Register("echo", func(_ context.Context, req json.RawMessage) (any, error) {
		var s string
		err := json.Unmarshal(req, &s)
		return "echo " + s + fmt.Sprintf(" pid-differs=%v", os.Getpid() != parentPID()), err
	})
	reg.Register("fail", func(context.Context, json.RawMessage) (any, error) {
		return nil, fmt.Errorf("analyse x: %w", errBad)
	})
	reg.Register("alloc", func(_ context.Context, req json.RawMessage) (any, error) {
		var n int
		json.Unmarshal(req, &n)
		b := make([]byte, n)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		return len(b), nil
	})
	reg.Register("panic", func(context.Context, json.RawMessage) (any, error) {
		var m map[string]int
		m["x"] = 1 // nil map write: a runtime panic
		return nil, nil
	})
	reg.Register("sleep", func(context.Context, json.RawMessage) (any, error) {
		time.Sleep(time.Minute)
		return nil, nil
	})
	reg.RegisterError("bad", errBad)
}

func parentPID() int {
	var p int
	fmt.Sscan(os.Getenv("SANDBOX_TEST_PARENT"), &p)
	return p
}

func TestMain(m *testing.M) {
	registerTestFuncs()
	reg.Main()
	os.Setenv("SANDBOX_TEST_PARENT", fmt.Sprint(os.Getpid()))
	os.Exit(m.Run())
}

func TestRunReturnsResult(t *testing.T) {
	var out string
	if err := reg.Run(context.Background(), "echo", "hi", &out, Limits{}); err != nil {
		t.Fatal(err)
	}
	if out != "echo hi pid-differs=true" {
		t.Fatalf("got %q", out)
	}
}

func TestErrorsKeepTheirSentinel(t *testing.T) {
	err := reg.Run(context.Background(), "fail", nil, nil, Limits{})
	if !errors.Is(err, errBad) || err.Error() != "analyse x: bad thing" {
		t.Fatalf("got %v", err)
	}
}

func TestOutOfMemoryIsContained(t *testing.T) {
	err := reg.Run(context.Background(), "alloc", 3<<30, nil, Limits{Memory: 1 << 30})
	if !errors.Is(err, ErrOutOfMemory) {
		t.Fatalf("3 GiB under a 1 GiB limit: %v, want ErrOutOfMemory", err)
	}
	var n int
	if err := reg.Run(context.Background(), "alloc", 64<<20, &n, Limits{Memory: 1 << 30}); err != nil || n != 64<<20 {
		t.Fatalf("64 MiB under a 1 GiB limit: %d, %v", n, err)
	}
}

func TestCrashIsContained(t *testing.T) {
	err := reg.Run(context.Background(), "panic", nil, nil, Limits{})
	if !errors.Is(err, ErrCrashed) {
		t.Fatalf("got %v, want ErrCrashed", err)
	}
	t.Log(err)
}

func TestTimeoutKillsChild(t *testing.T) {
	err := reg.Run(context.Background(), "sleep", nil, nil, Limits{Timeout: 300 * time.Millisecond})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want deadline exceeded", err)
	}
}

func TestUnknownFunction(t *testing.T) {
	if err := reg.Run(context.Background(), "nope", nil, nil, Limits{}); !errors.Is(err, ErrUnknown) {
		t.Fatalf("got %v", err)
	}
}
