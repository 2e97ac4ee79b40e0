// Command tablesink is test infrastructure: testenv.TableBatchSink's process, a stand-in for
// Table Storage that takes entity group transactions and keeps nothing, for benchmarks that
// measure the writer's CPU apart from the store's. It prints "listening <url>" once it listens.
//
//	tablesink -listen 127.0.0.1:0 [-upstream http://127.0.0.1:10002] [-exit-with-stdin]
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"

	"github.com/dvrouter/dvrouter/internal/testenv"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	upstream := flag.String("upstream", "", "URL every request that is not a $batch goes to (an Azurite); none: table creation is answered, the rest refused")
	withStdin := flag.Bool("exit-with-stdin", false, "exit when stdin reaches its end (the parent closed it or died)")
	flag.Parse()
	if err := run(*listen, *upstream, *withStdin); err != nil {
		fmt.Fprintln(os.Stderr, "tablesink:", err)
		os.Exit(1)
	}
}

func run(listen, upstream string, withStdin bool) error {
	var up *url.URL
	if upstream != "" {
		u, err := url.Parse(upstream)
		if err != nil || u.Host == "" {
			return fmt.Errorf("upstream %q is not a URL", upstream)
		}
		up = u
	}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	if withStdin {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			os.Exit(0)
		}()
	}
	fmt.Printf("listening http://%s\n", l.Addr())
	return http.Serve(l, testenv.TableBatchHandler(up))
}
