// Command reaction scans the output of long-running commands for repeated
// offences and runs ban and unban commands. See the README for usage.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
