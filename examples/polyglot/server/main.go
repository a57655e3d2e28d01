// server: the polyglot example's Go HTTP server. It serves the files the web component
// built; with -check it prints what it is and exits (kiln's smoke run).
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"runtime"
)

func main() {
	root := flag.String("root", "/srv/www", "directory to serve")
	addr := flag.String("addr", ":8080", "address to listen on")
	check := flag.Bool("check", false, "print the build and exit")
	flag.Parse()
	if *check {
		fmt.Printf("server ok GOARCH=%s\n", runtime.GOARCH)
		return
	}
	log.Printf("serving %s on %s", *root, *addr)
	log.Fatal(http.ListenAndServe(*addr, http.FileServer(http.Dir(*root))))
}
