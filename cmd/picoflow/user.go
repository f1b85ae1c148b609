package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/picoflow/picoflow/internal/auth"
	"github.com/picoflow/picoflow/internal/store"
)

func userCmd() *cobra.Command {
	root := &cobra.Command{Use: "user", Short: "Manage local portal accounts (facilities usually sign in through OIDC)"}
	var data, name string
	var groups []string
	set := &cobra.Command{
		Use:   "set",
		Short: "Create or update an account; the password is read from PICOFLOW_PASSWORD or standard input",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pw := os.Getenv("PICOFLOW_PASSWORD")
			if pw == "" {
				fmt.Fprint(cmd.ErrOrStderr(), "password: ")
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && line == "" {
					return fmt.Errorf("read password: %w", err)
				}
				pw = strings.TrimRight(line, "\r\n")
			}
			// The first token (or account) may come before the first server start.
			if err := os.MkdirAll(data, 0o750); err != nil {
				return err
			}
			db, err := store.Open(cmd.Context(), filepath.Join(data, "picoflow.db"))
			if err != nil {
				return err
			}
			defer db.Close()
			if err := auth.NewAccounts(db.Write, db.Read).Set(cmd.Context(), name, pw, groups...); err != nil {
				return err
			}
			g := "no groups"
			if len(groups) > 0 {
				g = strings.Join(groups, ", ")
			}
			fmt.Fprintf(cmd.OutOrStdout(), "account %s set (user:%s; %s) in %s; sign in at the portal's /login\n", name, name, g, data)
			return nil
		},
	}
	f := set.Flags()
	f.StringVar(&data, "data", "picoflow-data", "server data directory")
	f.StringVar(&name, "name", "", "user name")
	f.StringArrayVar(&groups, "group", nil, "principals: group:NAME, role:admin")
	set.MarkFlagRequired("name")
	root.AddCommand(set)
	return root
}
