//! The math astronomers' cuts need, as CEL functions: `abs`, `sqrt`,
//! `log10`, `pow`, and the library's `min` and `max`. Ints and doubles mix.

use cel::extractors::Arguments;
use cel::objects::Value;
use cel::{Context, ExecutionError};

type Result<T> = std::result::Result<T, ExecutionError>;

pub fn register(context: &mut Context<'static, 'static>) {
    // The names are free in the standard library (checked by the tests).
    let _ = context.add_function("abs", abs);
    let _ = context.add_function("sqrt", |Arguments(a): Arguments| {
        unary("sqrt", &a, f64::sqrt)
    });
    let _ = context.add_function("log10", |Arguments(a): Arguments| {
        unary("log10", &a, f64::log10)
    });
    let _ = context.add_function("pow", pow);
    let _ = context.add_function("min", cel::functions::min);
    let _ = context.add_function("max", cel::functions::max);
}

fn number(function: &str, value: &Value) -> Result<f64> {
    match value {
        Value::Int(i) => Ok(*i as f64),
        Value::UInt(u) => Ok(*u as f64),
        Value::Float(f) => Ok(*f),
        other => Err(ExecutionError::function_error(
            function,
            format!("expects a number, got {:?}", other.type_of()),
        )),
    }
}

fn unary(function: &str, args: &[Value], f: fn(f64) -> f64) -> Result<Value> {
    match args {
        [one] => Ok(Value::Float(f(number(function, one)?))),
        _ => Err(ExecutionError::invalid_argument_count(1, args.len())),
    }
}

fn abs(Arguments(args): Arguments) -> Result<Value> {
    match args.as_slice() {
        [Value::Int(i)] => Ok(Value::Int(i.wrapping_abs())),
        [other] => Ok(Value::Float(number("abs", other)?.abs())),
        _ => Err(ExecutionError::invalid_argument_count(1, args.len())),
    }
}

fn pow(Arguments(args): Arguments) -> Result<Value> {
    match args.as_slice() {
        [base, exponent] => Ok(Value::Float(
            number("pow", base)?.powf(number("pow", exponent)?),
        )),
        _ => Err(ExecutionError::invalid_argument_count(2, args.len())),
    }
}
