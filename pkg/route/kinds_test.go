package route_test

// The consumer kinds register with package config from package deliver; the route files these
// tests load have http consumers.
import _ "github.com/dvrouter/dvrouter/pkg/deliver"
