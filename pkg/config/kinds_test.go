package config_test

// The consumer kinds (http, servicebus, ...) live in their own folders and register with this
// package from package deliver; importing it here makes them known to this package's tests too.
import _ "github.com/dvrouter/dvrouter/pkg/deliver"
