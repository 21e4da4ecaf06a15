//! Avro binary straight into Arrow columns ("shredding"), without building
//! apache-avro values first: what makes Parquet archiving affordable. The
//! shredder checks what it reads as the decode gate's walk does, with the
//! same reader ([`Input`]) and the same limits per alert (lengths and array
//! counts against the bytes left, empty items against the alert's budget,
//! nothing left over), so a bare alert need not be walked twice; it is
//! stricter where columns need it (UTF-8 strings, ints in range). Each
//! alert lands whole or not at all: a failed one rolls its row back.

use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, FixedSizeBinaryArray, Float32Array,
    Float64Array, Int32Array, Int64Array, ListArray, NullArray, StringArray, StructArray,
    Time32MillisecondArray, Time64MicrosecondArray, TimestampMicrosecondArray,
    TimestampMillisecondArray,
};
use arrow_buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, FieldRef, Fields, TimeUnit};

use crate::avro::input::Input;

/// How one Avro value is read: its encoding, and for nullable unions which
/// branch is null.
#[derive(Debug, Clone)]
pub enum Read {
    Null,
    Bool,
    /// int, date, time-millis.
    Int,
    /// long and the long logical types.
    Long,
    Float,
    Double,
    Bytes,
    Str,
    Enum(Arc<[String]>),
    Fixed(usize),
    /// A union of null and one type.
    Optional {
        null: i64,
        value: i64,
        inner: Box<Read>,
    },
    /// Items, and the fewest bytes one takes: a block's count is checked
    /// against the bytes left before any item is read.
    Array(Box<Read>, usize),
    /// Fields in order; `false` for a top-level field left out of the layout.
    Record(Vec<(Read, bool)>),
}

impl Read {
    /// An array of these items (see [`Read::Array`]).
    pub fn array_of(items: Read) -> Self {
        let min = items.min_size();
        Read::Array(Box::new(items), min)
    }

    /// The fewest bytes a value takes, as the gate counts them.
    fn min_size(&self) -> usize {
        match self {
            Read::Null => 0,
            Read::Float => 4,
            Read::Double => 8,
            Read::Fixed(n) => *n,
            Read::Record(fields) => fields
                .iter()
                .fold(0usize, |sum, (read, _)| sum.saturating_add(read.min_size())),
            _ => 1,
        }
    }
}

/// One column being filled, row by row.
#[derive(Debug)]
pub enum Column {
    Null(usize),
    Bool(Vec<bool>, Vec<bool>),
    I32(Vec<i32>, Vec<bool>, DataType),
    I64(Vec<i64>, Vec<bool>, DataType),
    F32(Vec<f32>, Vec<bool>),
    F64(Vec<f64>, Vec<bool>),
    /// Binary or UTF-8: bytes, offsets (one more than rows), validity.
    Bytes(Vec<u8>, Vec<i32>, Vec<bool>, bool),
    Fixed(Vec<u8>, usize, Vec<bool>),
    List(Vec<i32>, Vec<bool>, FieldRef, Box<Column>),
    Struct(Vec<bool>, Fields, Vec<Column>),
}

impl Column {
    /// An empty column of `data_type` (as the layout derived it).
    pub fn new(data_type: &DataType) -> Result<Self> {
        Ok(match data_type {
            DataType::Null => Column::Null(0),
            DataType::Boolean => Column::Bool(Vec::new(), Vec::new()),
            DataType::Int32 | DataType::Date32 | DataType::Time32(_) => {
                Column::I32(Vec::new(), Vec::new(), data_type.clone())
            }
            DataType::Int64 | DataType::Timestamp(..) | DataType::Time64(_) => {
                Column::I64(Vec::new(), Vec::new(), data_type.clone())
            }
            DataType::Float32 => Column::F32(Vec::new(), Vec::new()),
            DataType::Float64 => Column::F64(Vec::new(), Vec::new()),
            DataType::Binary => Column::Bytes(Vec::new(), vec![0], Vec::new(), false),
            DataType::Utf8 => Column::Bytes(Vec::new(), vec![0], Vec::new(), true),
            DataType::FixedSizeBinary(n) => Column::Fixed(Vec::new(), *n as usize, Vec::new()),
            DataType::List(field) => Column::List(
                vec![0],
                Vec::new(),
                field.clone(),
                Box::new(Column::new(field.data_type())?),
            ),
            DataType::Struct(fields) => Column::Struct(
                Vec::new(),
                fields.clone(),
                fields
                    .iter()
                    .map(|f| Column::new(f.data_type()))
                    .collect::<Result<_>>()?,
            ),
            other => bail!("no column for {other}"),
        })
    }

    pub fn rows(&self) -> usize {
        match self {
            Column::Null(n) => *n,
            Column::Bool(_, v)
            | Column::I32(_, v, _)
            | Column::I64(_, v, _)
            | Column::F32(_, v)
            | Column::F64(_, v)
            | Column::Bytes(_, _, v, _)
            | Column::Fixed(_, _, v)
            | Column::List(_, v, _, _)
            | Column::Struct(v, _, _) => v.len(),
        }
    }

    /// Drops rows from `rows` on: a row that failed half-way.
    pub fn truncate(&mut self, rows: usize) {
        match self {
            Column::Null(n) => *n = rows.min(*n),
            Column::Bool(x, v) => (x.truncate(rows), v.truncate(rows)).1,
            Column::I32(x, v, _) => (x.truncate(rows), v.truncate(rows)).1,
            Column::I64(x, v, _) => (x.truncate(rows), v.truncate(rows)).1,
            Column::F32(x, v) => (x.truncate(rows), v.truncate(rows)).1,
            Column::F64(x, v) => (x.truncate(rows), v.truncate(rows)).1,
            Column::Bytes(data, offsets, v, _) => {
                v.truncate(rows);
                offsets.truncate(rows + 1);
                data.truncate(offsets[rows] as usize);
            }
            Column::Fixed(data, size, v) => {
                v.truncate(rows);
                data.truncate(rows * *size);
            }
            Column::List(offsets, v, _, item) => {
                v.truncate(rows);
                offsets.truncate(rows + 1);
                item.truncate(offsets[rows] as usize);
            }
            Column::Struct(v, _, children) => {
                v.truncate(rows);
                children.iter_mut().for_each(|c| c.truncate(rows));
            }
        }
    }

    pub fn push_null(&mut self) {
        match self {
            Column::Null(n) => *n += 1,
            Column::Bool(x, v) => (x.push(false), v.push(false)).1,
            Column::I32(x, v, _) => (x.push(0), v.push(false)).1,
            Column::I64(x, v, _) => (x.push(0), v.push(false)).1,
            Column::F32(x, v) => (x.push(0.0), v.push(false)).1,
            Column::F64(x, v) => (x.push(0.0), v.push(false)).1,
            Column::Bytes(data, offsets, v, _) => {
                offsets.push(data.len() as i32);
                v.push(false);
            }
            Column::Fixed(data, size, v) => {
                data.resize(data.len() + *size, 0);
                v.push(false);
            }
            Column::List(offsets, v, _, _) => {
                let end = *offsets.last().unwrap_or(&0);
                offsets.push(end);
                v.push(false);
            }
            Column::Struct(v, _, children) => {
                v.push(false);
                children.iter_mut().for_each(Column::push_null);
            }
        }
    }

    /// The column as an Arrow array; the column is left empty.
    pub fn finish(&mut self) -> Result<ArrayRef> {
        // Taken with the capacity they reached: the next row group is alike.
        fn take<T>(v: &mut Vec<T>) -> Vec<T> {
            let capacity = v.len();
            std::mem::replace(v, Vec::with_capacity(capacity))
        }
        let nulls = |v: &mut Vec<bool>| {
            let v = take(v);
            let nulls = NullBuffer::from(v);
            (nulls.null_count() > 0).then_some(nulls)
        };
        Ok(match self {
            Column::Null(n) => Arc::new(NullArray::new(std::mem::take(n))),
            Column::Bool(x, v) => {
                let values = BooleanArray::from(take(x));
                Arc::new(BooleanArray::new(values.values().clone(), nulls(v)))
            }
            Column::I32(x, v, kind) => {
                let (values, nulls) = (ScalarBuffer::from(take(x)), nulls(v));
                match kind {
                    DataType::Date32 => Arc::new(Date32Array::new(values, nulls)),
                    DataType::Time32(TimeUnit::Millisecond) => {
                        Arc::new(Time32MillisecondArray::new(values, nulls))
                    }
                    _ => Arc::new(Int32Array::new(values, nulls)),
                }
            }
            Column::I64(x, v, kind) => {
                let (values, nulls) = (ScalarBuffer::from(take(x)), nulls(v));
                match kind {
                    DataType::Timestamp(TimeUnit::Millisecond, _) => {
                        Arc::new(TimestampMillisecondArray::new(values, nulls).with_timezone("UTC"))
                    }
                    DataType::Timestamp(_, _) => {
                        Arc::new(TimestampMicrosecondArray::new(values, nulls).with_timezone("UTC"))
                    }
                    DataType::Time64(_) => Arc::new(Time64MicrosecondArray::new(values, nulls)),
                    _ => Arc::new(Int64Array::new(values, nulls)),
                }
            }
            Column::F32(x, v) => Arc::new(Float32Array::new(ScalarBuffer::from(take(x)), nulls(v))),
            Column::F64(x, v) => Arc::new(Float64Array::new(ScalarBuffer::from(take(x)), nulls(v))),
            Column::Bytes(data, offsets, v, utf8) => {
                let taken = take(offsets);
                offsets.push(0);
                let offsets = OffsetBuffer::new(ScalarBuffer::from(taken));
                let data = Buffer::from(take(data));
                let nulls = nulls(v);
                if *utf8 {
                    Arc::new(StringArray::try_new(offsets, data, nulls)?)
                } else {
                    Arc::new(BinaryArray::try_new(offsets, data, nulls)?)
                }
            }
            Column::Fixed(data, size, v) => Arc::new(FixedSizeBinaryArray::try_new(
                *size as i32,
                Buffer::from(take(data)),
                nulls(v),
            )?),
            Column::List(offsets, v, field, item) => {
                let taken = take(offsets);
                offsets.push(0);
                let offsets = OffsetBuffer::new(ScalarBuffer::from(taken));
                let nulls = nulls(v);
                Arc::new(ListArray::try_new(
                    field.clone(),
                    offsets,
                    item.finish()?,
                    nulls,
                )?)
            }
            Column::Struct(v, fields, children) => {
                let nulls = nulls(v);
                let arrays = children
                    .iter_mut()
                    .map(Column::finish)
                    .collect::<Result<Vec<_>>>()?;
                Arc::new(StructArray::try_new(fields.clone(), arrays, nulls)?)
            }
        })
    }
}

/// Reads one value into `column` (`None`: past it, for a field left out).
pub fn read(how: &Read, input: &mut Input<'_>, column: Option<&mut Column>) -> Result<()> {
    let Some(column) = column else {
        return skip(how, input);
    };
    match (how, column) {
        (Read::Optional { null, value, inner }, column) => {
            let branch = branch(input)?;
            if branch == *null {
                column.push_null();
            } else if branch == *value {
                read(inner, input, Some(column))?;
            } else {
                bail!("union branch {branch} out of range");
            }
        }
        (Read::Null, column) => column.push_null(),
        (Read::Bool, Column::Bool(x, v)) => {
            x.push(input.boolean()?);
            v.push(true);
        }
        (Read::Int, Column::I32(x, v, _)) => {
            x.push(i32::try_from(input.long()?).map_err(|_| anyhow!("int out of range"))?);
            v.push(true);
        }
        (Read::Int, Column::I64(x, v, _)) => (x.push(input.int()?.into()), v.push(true)).1,
        (Read::Long, Column::I64(x, v, _)) => (x.push(input.long()?), v.push(true)).1,
        (Read::Float, Column::F32(x, v)) => {
            let raw: [u8; 4] = input.take(4)?.try_into()?;
            (x.push(f32::from_le_bytes(raw)), v.push(true)).1
        }
        (Read::Double, Column::F64(x, v)) => {
            let raw: [u8; 8] = input.take(8)?.try_into()?;
            (x.push(f64::from_le_bytes(raw)), v.push(true)).1
        }
        (Read::Float, Column::F64(x, v)) => {
            let raw: [u8; 4] = input.take(4)?.try_into()?;
            (x.push(f64::from(f32::from_le_bytes(raw))), v.push(true)).1
        }
        (Read::Bytes | Read::Str, Column::Bytes(data, offsets, v, utf8)) => {
            let raw = match utf8 {
                true => input.string()?.as_bytes(),
                false => {
                    let n = input.length()?;
                    input.take(n)?
                }
            };
            data.extend_from_slice(raw);
            offsets.push(i32::try_from(data.len()).map_err(|_| anyhow!("row group over 2 GiB"))?);
            v.push(true);
        }
        (Read::Enum(symbols), Column::Bytes(data, offsets, v, _)) => {
            let symbol = &symbols[input.symbol(symbols.len())?];
            data.extend_from_slice(symbol.as_bytes());
            offsets.push(i32::try_from(data.len()).map_err(|_| anyhow!("row group over 2 GiB"))?);
            v.push(true);
        }
        (Read::Fixed(n), Column::Fixed(data, _, v)) => {
            data.extend_from_slice(input.take(*n)?);
            v.push(true);
        }
        (Read::Array(items, min), Column::List(offsets, v, _, item)) => {
            read_blocks(input, *min, |input| read(items, input, Some(item)))?;
            offsets.push(i32::try_from(item.rows()).map_err(|_| anyhow!("list too long"))?);
            v.push(true);
        }
        (Read::Record(fields), Column::Struct(v, _, children)) => {
            let mut kept = children.iter_mut();
            for (field, keep) in fields {
                read(field, input, if *keep { kept.next() } else { None })?;
            }
            v.push(true);
        }
        (how, column) => bail!("{how:?} does not fit column {}", column.rows()),
    }
    Ok(())
}

/// Walks past one value (a field left out of the layout), checking it as
/// [`read`] does.
fn skip(how: &Read, input: &mut Input<'_>) -> Result<()> {
    match how {
        Read::Null => {}
        Read::Bool => {
            input.boolean()?;
        }
        Read::Int => {
            input.int()?;
        }
        Read::Long => {
            input.long()?;
        }
        Read::Enum(symbols) => {
            input.symbol(symbols.len())?;
        }
        Read::Float => {
            input.take(4)?;
        }
        Read::Double => {
            input.take(8)?;
        }
        Read::Bytes => {
            let n = input.length()?;
            input.take(n)?;
        }
        Read::Str => {
            input.string()?;
        }
        Read::Fixed(n) => {
            input.take(*n)?;
        }
        Read::Optional { null, value, inner } => {
            let branch = branch(input)?;
            if branch == *value {
                skip(inner, input)?;
            } else if branch != *null {
                bail!("union branch {branch} out of range");
            }
        }
        Read::Array(items, min) => read_blocks(input, *min, |input| skip(items, input))?,
        Read::Record(fields) => {
            for (field, _) in fields {
                skip(field, input)?;
            }
        }
    }
    Ok(())
}

/// A union's branch index; never negative (a branch a union lacks is
/// written -1 in [`Read::Optional`]).
fn branch(input: &mut Input<'_>) -> Result<i64> {
    match input.long()? {
        branch if branch < 0 => bail!("union branch {branch} out of range"),
        branch => Ok(branch),
    }
}

/// An array's blocks: a count (negative: followed by a byte size), items, 0.
/// Each count is checked as the gate checks it (`Input::block_count`).
fn read_blocks(
    input: &mut Input<'_>,
    item_min_size: usize,
    mut item: impl FnMut(&mut Input<'_>) -> Result<()>,
) -> Result<()> {
    loop {
        let count = input.block_count(item_min_size)?;
        if count == 0 {
            return Ok(());
        }
        for _ in 0..count {
            item(input)?;
        }
    }
}
