package wdl

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Explain says why the condition is false for env: the call that decided it, with the values
// of its operands that are not literals, as in
// "equals(triggerBody()?['statuscode'], 2): triggerBody()?['statuscode'] is 1". Of an and(), the
// first argument that is false; of an or(), every argument. It is for people (`dvrouter
// match`), and returns "" when the condition is true or does not evaluate.
func (e *Expr) Explain(env *Env) string {
	if env == nil {
		env = &Env{}
	}
	if ok, err := e.Bool(env); err != nil || ok {
		return ""
	}
	var parts []string
	e.explain(e.root, env, &parts)
	return strings.Join(parts, "; ")
}

func (e *Expr) explain(n node, env *Env, parts *[]string) {
	var args []node
	switch x := n.(type) {
	case *andNode:
		for _, a := range x.args {
			v, err := a.eval(env)
			if err != nil || v.k != kBool {
				break
			}
			if !v.b {
				e.explain(a, env, parts)
				if !x.or {
					return
				}
			}
		}
		return
	case *eqNode:
		args = x.args
	case *callNode:
		args = x.args
	case *call4Node:
		args = x.args
	case *litNode:
		return // a literal false says all there is to say
	}
	text, ok := e.spans[n]
	if !ok {
		text = e.src
	}
	var vals []string
	for _, a := range args {
		if _, lit := a.(*litNode); lit {
			continue
		}
		v, err := a.eval(env)
		src, ok := e.spans[a]
		if err != nil || !ok {
			continue
		}
		vals = append(vals, src+" is "+describe(v.toAny(env)))
	}
	if len(vals) > 0 {
		text += ": " + strings.Join(vals, ", ")
	} else if len(args) == 0 {
		text += " is false"
	}
	*parts = append(*parts, text)
}

// describe writes a value as an expression would: text in single quotes, null, JSON otherwise.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return "'" + strings.ReplaceAll(x, "'", "''") + "'"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
