package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestCampaignSurvivesServerKill: a re-analysis campaign through the API of
// a server process that is killed with SIGKILL half way and restarted ends
// with exactly one new version of every record and the first versions
// unchanged (the benchmark's checks, on a few records).
func TestCampaignSurvivesServerKill(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var out bytes.Buffer
	res, err := runCampaignBench(ctx, &out, workers, campaignBench{dir: t.TempDir(), records: 12, size: 24, counts: 40, killAt: 0.5, maxInFlight: 3, workers: 2})
	t.Logf("%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	if !res.Killed || !strings.Contains(out.String(), "server killed (SIGKILL)") {
		t.Fatal("the server was not killed during the campaign")
	}
	if err := res.check(); err != nil {
		t.Fatal(err)
	}
}
