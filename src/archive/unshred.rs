//! Arrow rows back into Avro binary: the inverse of `shred.rs`, so that
//! `view --archive` shows a Parquet archive's alerts like an Avro one's.
//! The same [`Read`] plan that shredded a schema's alerts writes them again;
//! the arrays come from a file that may be anything, so every array's type
//! is checked against the plan and a mismatch is an error, never a panic.

use anyhow::{anyhow, bail, Result};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Float32Type, Float64Type, Int32Type, Int64Type, Time32MillisecondType,
    Time64MicrosecondType, TimestampMicrosecondType, TimestampMillisecondType,
};
use arrow_array::Array;
use arrow_schema::{DataType, TimeUnit};

use super::shred::Read;
use crate::avro::varint::write_long;

/// Writes row `row` of `array` as Avro binary of `read` to `out`.
pub fn write(read: &Read, array: &dyn Array, row: usize, out: &mut Vec<u8>) -> Result<()> {
    match read {
        Read::Null => {}
        Read::Optional { null, value, inner } => {
            if array.is_null(row) {
                if *null < 0 {
                    bail!("a null where the schema allows none");
                }
                write_long(out, *null);
            } else {
                write_long(out, *value);
                write(inner, array, row, out)?;
            }
        }
        _ if array.is_null(row) => bail!("a null where the schema allows none"),
        Read::Bool => out.push(u8::from(
            array
                .as_boolean_opt()
                .ok_or_else(|| mismatch(array))?
                .value(row),
        )),
        Read::Int => write_long(out, i64::from(int(array, row)?)),
        Read::Long => write_long(out, long(array, row)?),
        Read::Float => out.extend_from_slice(
            &array
                .as_primitive_opt::<Float32Type>()
                .ok_or_else(|| mismatch(array))?
                .value(row)
                .to_le_bytes(),
        ),
        Read::Double => out.extend_from_slice(
            &array
                .as_primitive_opt::<Float64Type>()
                .ok_or_else(|| mismatch(array))?
                .value(row)
                .to_le_bytes(),
        ),
        Read::Bytes => {
            let value = array
                .as_binary_opt::<i32>()
                .ok_or_else(|| mismatch(array))?
                .value(row);
            write_long(out, value.len() as i64);
            out.extend_from_slice(value);
        }
        Read::Str => {
            let value = text(array, row)?;
            write_long(out, value.len() as i64);
            out.extend_from_slice(value.as_bytes());
        }
        Read::Enum(symbols) => {
            let value = text(array, row)?;
            let index = symbols
                .iter()
                .position(|s| s == value)
                .ok_or_else(|| anyhow!("{value:?} is not a symbol of the enum"))?;
            write_long(out, index as i64);
        }
        Read::Fixed(size) => {
            let value = array
                .as_fixed_size_binary_opt()
                .ok_or_else(|| mismatch(array))?
                .value(row);
            if value.len() != *size {
                bail!(
                    "a fixed of {} bytes where {size} were expected",
                    value.len()
                );
            }
            out.extend_from_slice(value);
        }
        Read::Array(item, _) => {
            let list = array.as_list_opt::<i32>().ok_or_else(|| mismatch(array))?;
            let offsets = list.value_offsets();
            let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
            if end > start {
                write_long(out, (end - start) as i64);
                let values = list.values();
                for at in start..end {
                    write(item, values.as_ref(), at, out)?;
                }
            }
            write_long(out, 0);
        }
        Read::Record(fields) => {
            let record = array.as_struct_opt().ok_or_else(|| mismatch(array))?;
            if record.num_columns() != fields.len() {
                bail!(
                    "a record of {} columns where {} were expected",
                    record.num_columns(),
                    fields.len()
                );
            }
            for ((field, _), column) in fields.iter().zip(record.columns()) {
                write(field, column.as_ref(), row, out)?;
            }
        }
    }
    Ok(())
}

/// A field the archive left out (cutouts without --stamps): null, where
/// the schema allows it.
pub fn write_left_out(read: &Read, out: &mut Vec<u8>) -> Result<()> {
    match read {
        Read::Null => Ok(()),
        Read::Optional { null, .. } if *null >= 0 => {
            write_long(out, *null);
            Ok(())
        }
        _ => bail!("a field the archive left out is not nullable"),
    }
}

fn mismatch(array: &dyn Array) -> anyhow::Error {
    anyhow!(
        "a column of type {} where the schema needs another",
        array.data_type()
    )
}

fn int(array: &dyn Array, row: usize) -> Result<i32> {
    Ok(match array.data_type() {
        DataType::Int32 => array.as_primitive::<Int32Type>().value(row),
        DataType::Date32 => array.as_primitive::<Date32Type>().value(row),
        DataType::Time32(TimeUnit::Millisecond) => {
            array.as_primitive::<Time32MillisecondType>().value(row)
        }
        _ => return Err(mismatch(array)),
    })
}

fn long(array: &dyn Array, row: usize) -> Result<i64> {
    Ok(match array.data_type() {
        DataType::Int64 => array.as_primitive::<Int64Type>().value(row),
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            array.as_primitive::<TimestampMillisecondType>().value(row)
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            array.as_primitive::<TimestampMicrosecondType>().value(row)
        }
        DataType::Time64(TimeUnit::Microsecond) => {
            array.as_primitive::<Time64MicrosecondType>().value(row)
        }
        _ => return Err(mismatch(array)),
    })
}

fn text(array: &dyn Array, row: usize) -> Result<&str> {
    Ok(array
        .as_string_opt::<i32>()
        .ok_or_else(|| mismatch(array))?
        .value(row))
}
