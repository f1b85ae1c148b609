package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/picoflow/picoflow/internal/auth"
	"github.com/picoflow/picoflow/internal/store"
)

func tokenCmd() *cobra.Command {
	root := &cobra.Command{Use: "token", Short: "Manage API tokens"}
	var data, name, subject string
	var groups, flows []string
	create := &cobra.Command{
		Use:   "create",
		Short: "Create an API token (printed once; only its hash is stored)",
		Long: `Create an API token. Examples:
  picoflow token create --subject agent:picoprobe-pc --group role:agent
  picoflow token create --subject agent:picoprobe-pc --group role:agent --flows hyperspectral,spatiotemporal
  picoflow token create --subject user:alice --group group:picoprobe --group role:admin
  picoflow token create --subject user:prometheus --group role:metrics`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// The first token (or account) may come before the first server start.
			if err := os.MkdirAll(data, 0o750); err != nil {
				return err
			}
			db, err := store.Open(cmd.Context(), filepath.Join(data, "picoflow.db"))
			if err != nil {
				return err
			}
			defer db.Close()
			tok, err := auth.NewTokens(db.Write, db.Read).CreateRestricted(cmd.Context(), name, subject, flows, groups...)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			return nil
		},
	}
	f := create.Flags()
	f.StringVar(&data, "data", "picoflow-data", "server data directory")
	f.StringVar(&name, "name", "", "what the token is for")
	f.StringVar(&subject, "subject", "", "who the token acts as (agent:NAME, user:NAME, endpoint:NAME)")
	f.StringArrayVar(&groups, "group", nil, "further principals: group:NAME, role:agent, role:admin, role:curator, role:endpoint, role:metrics")
	f.StringSliceVar(&flows, "flows", nil, "the only flows this token may start (comma-separated; default: any flow)")
	create.MarkFlagRequired("subject")
	root.AddCommand(create)
	return root
}
