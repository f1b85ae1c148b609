package main

import "github.com/spf13/cobra"

func simulateCmd() *cobra.Command { return &cobra.Command{Use: "simulate"} }

func benchCmd() *cobra.Command { return &cobra.Command{Use: "bench"} }
