// hello-go: kiln's Go example. It prints the architecture it was built for, resolves a
// name from /etc/hosts with Go's own resolver (no libc, so it works in a scratch image),
// and with -port serves HTTP until stopped.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
)

// variant is GOARM (or GO386, GOAMD64, ...) as recorded in the binary's build info.
func variant() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, s := range info.Settings {
		if strings.HasPrefix(s.Key, "GO") && s.Key != "GOOS" && s.Key != "GOARCH" && s.Key != "GOEXPERIMENT" {
			return " " + s.Key + "=" + s.Value
		}
	}
	return ""
}

func greeting() string {
	return fmt.Sprintf("Hello from kiln! GOARCH=%s GOOS=%s%s", runtime.GOARCH, runtime.GOOS, variant())
}

func main() {
	port := flag.Int("port", 0, "serve HTTP on this port (0: print and exit)")
	host := flag.String("resolve", "localhost", "name to look up (from /etc/hosts)")
	flag.Parse()

	fmt.Println(greeting())
	addrs, err := net.LookupHost(*host)
	if err != nil {
		fmt.Fprintf(os.Stderr, "resolve %s: %v\n", *host, err)
		os.Exit(1)
	}
	fmt.Printf("%s resolves to %s\n", *host, strings.Join(addrs, " "))

	if *port == 0 {
		return
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, greeting())
	})
	addr := fmt.Sprintf(":%d", *port)
	log.Printf("serving on %s", addr)
	log.Fatal(http.ListenAndServe(addr, nil))
}
