package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/picoflow/picoflow/internal/analysis"
	"github.com/picoflow/picoflow/internal/campaign"
)

func reanalyzeCmd() *cobra.Command {
	var server, flowName, where, follow, cancel, retry string
	var params []string
	var maxInFlight int
	var list, noWait, force bool
	cmd := &cobra.Command{
		Use:   "reanalyze --query QUERY [--flow F] [--params k=v ...] [--where endpoint]",
		Short: "Re-analyse past records: a campaign over the records a search finds, with progress",
		Long: `Start a re-analysis campaign on the server: the records the query finds
(the portal's search language, run with your token's principals: you include only
records you can see) are analysed again from their stored raw files, through the
same flows (so on compute endpoints and batch blocks when the flow says so), at most
--max-in-flight at a time. Each record gets a new version; older versions and
their products stay readable. A campaign is resumed after a server restart, and
is idempotent: starting the same campaign twice makes one new version per record
and analysis version + parameters. Needs a token with role:admin or role:curator
in PICOFLOW_TOKEN. Progress is shown until the campaign ends (Ctrl-C stops
watching, not the campaign).

Query examples:
  kind:hyperspectral                  every spectrum image
  element:Au date:2026-11             gold, acquired in November 2026
  made-before:v0.3.0 kind:spectrum    spectra made by an analysis before v0.3.0

Analysis parameters (--params NAME=VALUE):
  ` + strings.Join(analysis.ParamNames(), "\n  "),
		Example: `  picoflow reanalyze --query 'kind:hyperspectral' --params min_significance=6
  picoflow reanalyze --list
  picoflow reanalyze --follow c1a21e0d633dafb4 | --cancel ID | --retry ID`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			token := os.Getenv("PICOFLOW_TOKEN")
			if token == "" {
				return errors.New("reanalyze: no API token (set PICOFLOW_TOKEN to a token with role:admin or role:curator)")
			}
			cl := &apiClient{base: strings.TrimRight(server, "/"), token: token}
			ctx, out := cmd.Context(), cmd.OutOrStdout()
			query, _ := cmd.Flags().GetString("query")
			switch {
			case list:
				var cs []campaign.Campaign
				if err := cl.do(ctx, http.MethodGet, "/api/v1/campaigns", nil, &cs); err != nil {
					return err
				}
				for _, c := range cs {
					fmt.Fprintf(out, "%s  %-9s %4d/%-4d done %d skipped %d failed %d  %s  %q\n", c.ID, c.State, c.Settled(), c.Total,
						c.Counts[campaign.ItemDone], c.Counts[campaign.ItemSkipped], c.Counts[campaign.ItemFailed], c.Created.Local().Format("2006-01-02 15:04"), c.Spec.Query)
				}
				return nil
			case cancel != "":
				return cl.do(ctx, http.MethodPost, "/api/v1/campaigns/"+cancel+"/cancel", nil, nil)
			case retry != "":
				follow = retry
				if err := cl.do(ctx, http.MethodPost, "/api/v1/campaigns/"+retry+"/retry", nil, nil); err != nil {
					return err
				}
			case follow != "":
			default:
				if query == "" {
					return errors.New("reanalyze: say which records with --query (e.g. --query kind:hyperspectral)")
				}
				spec := campaign.Spec{Query: query, Flow: flowName, Where: where, MaxInFlight: maxInFlight, Force: force, Params: map[string]string{}}
				for _, kv := range params {
					k, v, ok := strings.Cut(kv, "=")
					if !ok {
						return fmt.Errorf("reanalyze: --params %q: want NAME=VALUE", kv)
					}
					spec.Params[k] = v
				}
				var c campaign.Campaign
				if err := cl.do(ctx, http.MethodPost, "/api/v1/campaigns", spec, &c); err != nil {
					return err
				}
				fmt.Fprintf(out, "campaign %s: %d records, analysis version %s\n", c.ID, c.Total, c.Version)
				if noWait {
					return nil
				}
				follow = c.ID
			}
			return followCampaign(ctx, out, cl, follow)
		},
	}
	f := cmd.Flags()
	f.StringVar(&server, "server", "http://127.0.0.1:8470", "server base URL")
	f.String("query", "", "the records to re-analyse: a search as in the portal (kind:hyperspectral, element:Au, date:2026, made-before:v0.3.0, words)")
	f.StringVar(&flowName, "flow", "", "flow to run on each record's raw file (default: the flow that made it)")
	f.StringArrayVar(&params, "params", nil, "analysis parameter NAME=VALUE (repeatable; see above)")
	f.StringVar(&where, "where", "", "run the analysis on the server or on a compute endpoint (default: as the flow says)")
	f.IntVar(&maxInFlight, "max-in-flight", 4, "runs under way at once")
	f.BoolVar(&force, "force", false, "run records again even when they are up to date")
	f.BoolVar(&noWait, "no-wait", false, "start the campaign and return")
	f.BoolVar(&list, "list", false, "list campaigns")
	f.StringVar(&follow, "follow", "", "show the progress of campaign ID")
	f.StringVar(&cancel, "cancel", "", "cancel campaign ID (records under way finish)")
	f.StringVar(&retry, "retry", "", "run the failed records of campaign ID again, and follow it")
	return cmd
}

// apiClient calls the server's REST API with a token.
type apiClient struct {
	base, token string
}

func (c *apiClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode >= 300 {
		var e struct{ Error string }
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s %s: %s", method, path, e.Error)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// campaignView is a campaign as the API returns it.
type campaignView = campaign.Campaign

// followCampaign shows a campaign's progress until it ends: a bar redrawn
// in place on a terminal, a line every few seconds otherwise.
func followCampaign(ctx context.Context, out io.Writer, cl *apiClient, id string) error {
	tty := false
	if f, ok := out.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	every := 5 * time.Second
	if tty {
		every = 500 * time.Millisecond
	}
	var c campaignView
	for {
		if err := cl.do(ctx, http.MethodGet, "/api/v1/campaigns/"+id, nil, &c); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		line := progressLine(&c)
		if tty {
			fmt.Fprintf(out, "\r\033[K%s", line)
		} else {
			fmt.Fprintln(out, line)
		}
		if c.State != campaign.StateRunning {
			break
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(out, "\nstopped watching; the campaign goes on (picoflow reanalyze --follow %s)\n", id)
			return nil
		case <-time.After(every):
		}
	}
	if tty {
		fmt.Fprintln(out)
	}
	fmt.Fprintf(out, "campaign %s %s: %d done, %d skipped (up to date), %d failed, %d cancelled of %d\n", c.ID, c.State,
		c.Counts[campaign.ItemDone], c.Counts[campaign.ItemSkipped], c.Counts[campaign.ItemFailed], c.Counts[campaign.ItemCancelled], c.Total)
	for _, f := range c.Failures {
		fmt.Fprintf(out, "  failed: record %s (run %s): %s\n", f.RecordID, f.RunID, f.Error)
	}
	if len(c.Failures) > 0 {
		fmt.Fprintf(out, "retry them with: picoflow reanalyze --retry %s\n", c.ID)
	}
	return nil
}

// progressLine is one line of progress: a bar, counts, rate and ETA.
func progressLine(c *campaignView) string {
	const width = 30
	done := c.Settled()
	fill := 0
	if c.Total > 0 {
		fill = done * width / c.Total
	}
	eta := "-"
	if c.ETA > 0 {
		eta = c.ETA.Round(time.Second).String()
	}
	return fmt.Sprintf("[%s%s] %d/%d  done %d  skipped %d  failed %d  in flight %d  %.1f records/s  ETA %s",
		strings.Repeat("#", fill), strings.Repeat(".", width-fill), done, c.Total, c.Counts[campaign.ItemDone], c.Counts[campaign.ItemSkipped],
		c.Counts[campaign.ItemFailed], c.Counts[campaign.ItemStarted], c.RatePerSec, eta)
}
