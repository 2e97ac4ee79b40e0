package wdl

import (
	"math"
	"math/bits"
)

// Math: integers stay integers (an overflow is an error, not a wrapped result), a float makes
// the result a float, decimal() values stay decimals with integers and other decimals.

func arith(op byte) func(env *Env, a args3, n int) (value, error) {
	return func(env *Env, a args3, _ int) (value, error) {
		x, y := a[0], a[1]
		if !x.isNum() || !y.isNum() {
			bad := x
			if x.isNum() {
				bad = y
			}
			return null, failf("expects numbers (integers or floats), got %s", bad.typeName())
		}
		switch {
		case x.k == kInt && y.k == kInt:
			return intArith(op, x.i, y.i)
		case (x.k == kDec || y.k == kDec) && x.k != kFloat && y.k != kFloat:
			dx, _ := decimalFromValue(x)
			dy, _ := decimalFromValue(y)
			d, err := decimalArith(op, dx, dy)
			if err != nil {
				return null, err
			}
			return decV(d), nil
		}
		fx, fy := x.float(), y.float()
		var r float64
		switch op {
		case '+':
			r = fx + fy
		case '-':
			r = fx - fy
		case '*':
			r = fx * fy
		case '/':
			if fy == 0 {
				return null, failf("cannot divide by zero")
			}
			r = fx / fy
		case '%':
			if fy == 0 {
				return null, failf("cannot divide by zero")
			}
			r = math.Mod(fx, fy)
		}
		if math.IsInf(r, 0) || math.IsNaN(r) {
			return null, failf("the result is outside the range of a float")
		}
		return floatV(r), nil
	}
}

func intArith(op byte, x, y int64) (value, error) {
	overflow := failf("the result is outside the range of a 64-bit integer")
	switch op {
	case '+':
		r := x + y
		if (r > x) != (y > 0) {
			return null, overflow
		}
		return intV(r), nil
	case '-':
		r := x - y
		if (r < x) != (y > 0) {
			return null, overflow
		}
		return intV(r), nil
	case '*':
		hi, lo := bits.Mul64(absInt(x), absInt(y))
		neg := (x < 0) != (y < 0)
		if hi != 0 || (!neg && lo > math.MaxInt64) || (neg && lo > 1<<63) {
			return null, overflow
		}
		if neg {
			return intV(int64(-lo)), nil
		}
		return intV(int64(lo)), nil
	case '/', '%':
		if y == 0 {
			return null, failf("cannot divide by zero")
		}
		if x == math.MinInt64 && y == -1 {
			if op == '%' {
				return intV(0), nil
			}
			return null, overflow
		}
		// Go, like C#, truncates toward zero, so the remainder has the dividend's sign:
		// mod(-5, 2) is -1 and mod(4, -3) is 1, as the reference shows.
		if op == '/' {
			return intV(x / y), nil
		}
		return intV(x % y), nil
	}
	return null, nil
}

// extreme is max and min: of numbers, or of the numbers in one array.
func extreme(name string, sign int) func(env *Env, a []value) (value, error) {
	return func(env *Env, a []value) (value, error) {
		items := a
		if len(a) == 1 && a[0].k == kArr {
			arr := a[0].arr()
			if len(arr) == 0 {
				return null, failf("expects a non-empty array")
			}
			items = make([]value, len(arr))
			for i, x := range arr {
				items[i] = fromAny(x)
			}
		}
		best := items[0]
		for _, v := range items {
			if !v.isNum() {
				return null, failf("expects numbers or an array of numbers, got %s", v.typeName())
			}
			if compareNumbers(v, best)*sign > 0 {
				best = v
			}
		}
		return best, nil
	}
}
