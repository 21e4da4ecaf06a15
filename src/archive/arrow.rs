//! Arrow columns for Parquet archives. The Arrow schema is derived from the
//! Avro schema, never inferred from values: a long stays int64, a field is
//! nullable exactly when its Avro type is a union with null, records become
//! structs, arrays lists, bytes binary, enums strings, timestamps timestamps.
//! Types an alert archive does not need (maps, unions of several non-null
//! types, decimals) are refused by name, before anything is written.

use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use apache_avro::schema::{Name, RecordSchema, Schema};
use apache_avro::types::Value;
use arrow_array::builder::{BinaryBuilder, StringBuilder};
use arrow_array::{
    ArrayRef, BooleanArray, Date32Array, FixedSizeBinaryArray, Float32Array, Float64Array,
    Int32Array, Int64Array, ListArray, NullArray, RecordBatch, StructArray, Time32MillisecondArray,
    Time64MicrosecondArray, TimestampMicrosecondArray, TimestampMillisecondArray,
};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{DataType, Field, FieldRef, Fields, SchemaRef, TimeUnit};

use super::Meta;
use crate::avro::json::is_cutout_field;

/// A column's type, compiled once from the Avro schema.
#[derive(Debug, Clone)]
enum Col {
    Null,
    Bool,
    I32,
    I64,
    F32,
    F64,
    Bin,
    Str,
    Fixed(i32),
    Date,
    TsMs,
    TsUs,
    TimeMs,
    TimeUs,
    List(FieldRef, Box<Col>),
    Struct(Fields, Vec<Col>),
}

impl Col {
    fn data_type(&self) -> DataType {
        let utc = || Some(Arc::from("UTC"));
        match self {
            Col::Null => DataType::Null,
            Col::Bool => DataType::Boolean,
            Col::I32 => DataType::Int32,
            Col::I64 => DataType::Int64,
            Col::F32 => DataType::Float32,
            Col::F64 => DataType::Float64,
            Col::Bin => DataType::Binary,
            Col::Str => DataType::Utf8,
            Col::Fixed(n) => DataType::FixedSizeBinary(*n),
            Col::Date => DataType::Date32,
            Col::TsMs => DataType::Timestamp(TimeUnit::Millisecond, utc()),
            Col::TsUs => DataType::Timestamp(TimeUnit::Microsecond, utc()),
            Col::TimeMs => DataType::Time32(TimeUnit::Millisecond),
            Col::TimeUs => DataType::Time64(TimeUnit::Microsecond),
            Col::List(field, _) => DataType::List(field.clone()),
            Col::Struct(fields, _) => DataType::Struct(fields.clone()),
        }
    }
}

/// The Arrow layout of one Avro alert schema.
#[derive(Debug, Clone)]
pub struct Layout {
    pub schema: SchemaRef,
    /// Top-level Avro fields kept, by position in the record, with their columns.
    columns: Vec<(usize, Col)>,
}

impl Layout {
    /// The layout for alerts of `avro` (a record); cutouts left out if asked.
    pub fn new(avro: &Schema, stamps: bool) -> Result<Self> {
        let resolved = apache_avro::schema::ResolvedSchema::try_from(avro)?;
        let mut compiler = Compiler {
            names: resolved.get_names(),
        };
        let Schema::Record(record) = avro else {
            bail!("a Parquet archive needs alerts that are Avro records");
        };
        let mut fields = Vec::new();
        let mut columns = Vec::new();
        for (i, field) in record.fields.iter().enumerate() {
            if !stamps && is_cutout_field(&field.name) {
                continue;
            }
            let (col, nullable) = compiler.column(&field.schema, &field.name)?;
            fields.push(Field::new(&field.name, col.data_type(), nullable));
            columns.push((i, col));
        }
        fields.push(Field::new(
            "_kafka",
            DataType::Struct(kafka_fields()),
            false,
        ));
        Ok(Self {
            schema: Arc::new(arrow_schema::Schema::new(fields)),
            columns,
        })
    }

    /// Dotted paths of the binary leaf columns (cutout images): min/max
    /// statistics of megabytes of image bytes are of no use to a reader.
    pub fn binary_columns(&self) -> Vec<Vec<String>> {
        fn walk(col: &Col, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
            match col {
                Col::Bin | Col::Fixed(_) => out.push(path.clone()),
                Col::List(field, item) => {
                    path.push("list".into());
                    path.push(field.name().clone());
                    walk(item, path, out);
                    path.truncate(path.len() - 2);
                }
                Col::Struct(fields, cols) => {
                    for (field, col) in fields.iter().zip(cols) {
                        path.push(field.name().clone());
                        walk(col, path, out);
                        path.pop();
                    }
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        for ((_, col), field) in self.columns.iter().zip(self.schema.fields()) {
            walk(col, &mut vec![field.name().clone()], &mut out);
        }
        out
    }

    /// A batch of alerts (records of the layout's schema) with where they came from.
    pub fn batch(&self, rows: &[(Value, Meta)]) -> Result<RecordBatch> {
        let mut arrays = Vec::with_capacity(self.columns.len() + 1);
        for (index, col) in &self.columns {
            let values: Vec<Option<&Value>> = rows
                .iter()
                .map(|(alert, _)| match alert {
                    Value::Record(fields) => fields.get(*index).map(|(_, v)| v).and_then(present),
                    _ => None,
                })
                .collect();
            arrays.push(array(col, &values)?);
        }
        arrays.push(kafka_column(rows));
        Ok(RecordBatch::try_new(self.schema.clone(), arrays)?)
    }
}

fn kafka_fields() -> Fields {
    Fields::from(vec![
        Field::new("partition", DataType::Int32, false),
        Field::new("offset", DataType::Int64, false),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, Some(Arc::from("UTC"))),
            true,
        ),
    ])
}

fn kafka_column(rows: &[(Value, Meta)]) -> ArrayRef {
    let partition = Int32Array::from_iter_values(rows.iter().map(|(_, m)| m.partition));
    let offset = Int64Array::from_iter_values(rows.iter().map(|(_, m)| m.offset));
    let timestamp =
        TimestampMillisecondArray::from(rows.iter().map(|(_, m)| m.timestamp).collect::<Vec<_>>())
            .with_timezone("UTC");
    Arc::new(StructArray::new(
        kafka_fields(),
        vec![Arc::new(partition), Arc::new(offset), Arc::new(timestamp)],
        None,
    ))
}

/// A value, or `None` for null (unions unwrapped).
fn present(value: &Value) -> Option<&Value> {
    match value {
        Value::Null => None,
        Value::Union(_, inner) => present(inner),
        other => Some(other),
    }
}

struct Compiler<'s> {
    names: &'s std::collections::HashMap<Name, &'s Schema>,
}

impl Compiler<'_> {
    /// A column and whether it is nullable; `path` names it in errors.
    fn column(&mut self, schema: &Schema, path: &str) -> Result<(Col, bool)> {
        let col = match schema {
            Schema::Null => return Ok((Col::Null, true)),
            Schema::Union(union) => {
                let others: Vec<&Schema> = union
                    .variants()
                    .iter()
                    .filter(|s| **s != Schema::Null)
                    .collect();
                return match others.as_slice() {
                    [] => Ok((Col::Null, true)),
                    [one] => Ok((self.column(one, path)?.0, union.is_nullable())),
                    _ => Err(anyhow!(
                        "{path}: a union of several non-null types has no Parquet column type; use --format avro"
                    )),
                };
            }
            Schema::Boolean => Col::Bool,
            Schema::Int => Col::I32,
            Schema::Long => Col::I64,
            Schema::Float => Col::F32,
            Schema::Double => Col::F64,
            Schema::Bytes => Col::Bin,
            Schema::String | Schema::Enum(_) | Schema::Uuid => Col::Str,
            Schema::Fixed(f) => Col::Fixed(i32::try_from(f.size)?),
            Schema::Date => Col::Date,
            Schema::TimestampMillis => Col::TsMs,
            Schema::TimestampMicros => Col::TsUs,
            Schema::TimeMillis => Col::TimeMs,
            Schema::TimeMicros => Col::TimeUs,
            Schema::Array(array) => {
                let (item, nullable) = self.column(&array.items, &format!("{path}[]"))?;
                let field = Arc::new(Field::new("item", item.data_type(), nullable));
                Col::List(field, Box::new(item))
            }
            Schema::Record(record) => self.record(record, path)?,
            Schema::Ref { name } => {
                let target = *self
                    .names
                    .get(name)
                    .ok_or_else(|| anyhow!("{path}: unknown type {name}"))?;
                return self.column(target, path);
            }
            other => bail!(
                "{path}: Avro type {:?} has no Parquet column here; use --format avro",
                apache_avro::schema::SchemaKind::from(other)
            ),
        };
        Ok((col, false))
    }

    fn record(&mut self, record: &RecordSchema, path: &str) -> Result<Col> {
        let mut fields = Vec::new();
        let mut cols = Vec::new();
        for field in &record.fields {
            let (col, nullable) = self.column(&field.schema, &format!("{path}.{}", field.name))?;
            fields.push(Field::new(&field.name, col.data_type(), nullable));
            cols.push(col);
        }
        Ok(Col::Struct(Fields::from(fields), cols))
    }
}

fn nulls(values: &[Option<&Value>]) -> Option<NullBuffer> {
    let nulls = NullBuffer::from(values.iter().map(Option::is_some).collect::<Vec<_>>());
    (nulls.null_count() > 0).then_some(nulls)
}

/// One column of values; a value that does not fit the column is an error.
fn array(col: &Col, values: &[Option<&Value>]) -> Result<ArrayRef> {
    let mismatch = |v: &Value| {
        let shown = format!("{v:?}");
        anyhow!(
            "value {shown:.80} does not fit column type {}",
            col.data_type()
        )
    };
    macro_rules! primitive {
        ($array:ty, $($pattern:pat => $out:expr),+) => {{
            let mut out = Vec::with_capacity(values.len());
            for value in values {
                out.push(match value {
                    None => None,
                    $(Some($pattern) => Some($out),)+
                    Some(other) => return Err(mismatch(other)),
                });
            }
            Arc::new(<$array>::from(out)) as ArrayRef
        }};
    }
    Ok(match col {
        Col::Null => Arc::new(NullArray::new(values.len())),
        Col::Bool => primitive!(BooleanArray, Value::Boolean(b) => *b),
        Col::I32 => primitive!(Int32Array, Value::Int(i) => *i),
        Col::I64 => primitive!(Int64Array, Value::Long(i) => *i, Value::Int(i) => i64::from(*i)),
        Col::F32 => primitive!(Float32Array, Value::Float(f) => *f),
        Col::F64 => {
            primitive!(Float64Array, Value::Double(f) => *f, Value::Float(f) => f64::from(*f))
        }
        Col::Date => primitive!(Date32Array, Value::Date(d) => *d),
        Col::TsMs => {
            let times = primitive_vec(values, |v| match v {
                Value::TimestampMillis(t) | Value::Long(t) => Some(*t),
                _ => None,
            })?;
            Arc::new(TimestampMillisecondArray::from(times).with_timezone("UTC"))
        }
        Col::TsUs => {
            let times = primitive_vec(values, |v| match v {
                Value::TimestampMicros(t) | Value::Long(t) => Some(*t),
                _ => None,
            })?;
            Arc::new(TimestampMicrosecondArray::from(times).with_timezone("UTC"))
        }
        Col::TimeMs => primitive!(Time32MillisecondArray, Value::TimeMillis(t) => *t),
        Col::TimeUs => primitive!(Time64MicrosecondArray, Value::TimeMicros(t) => *t),
        Col::Bin => {
            let mut builder = BinaryBuilder::new();
            for value in values {
                match value {
                    None => builder.append_null(),
                    Some(Value::Bytes(b)) => builder.append_value(b),
                    Some(other) => return Err(mismatch(other)),
                }
            }
            Arc::new(builder.finish())
        }
        Col::Str => {
            let mut builder = StringBuilder::new();
            for value in values {
                match value {
                    None => builder.append_null(),
                    Some(Value::String(s)) | Some(Value::Enum(_, s)) => builder.append_value(s),
                    Some(Value::Uuid(u)) => builder.append_value(u.to_string()),
                    Some(other) => return Err(mismatch(other)),
                }
            }
            Arc::new(builder.finish())
        }
        Col::Fixed(size) => {
            let items = values.iter().map(|v| match v {
                Some(Value::Fixed(_, b)) => Some(b.as_slice()),
                _ => None,
            });
            Arc::new(FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                items, *size,
            )?)
        }
        Col::List(field, item) => list(field, item, values)?,
        Col::Struct(fields, cols) => {
            let mut children = Vec::with_capacity(cols.len());
            for (i, child) in cols.iter().enumerate() {
                let name = fields[i].name();
                let column: Vec<Option<&Value>> = values
                    .iter()
                    .map(|v| match v {
                        Some(Value::Record(record)) => field_value(record, i, name, cols.len()),
                        _ => None,
                    })
                    .collect();
                children.push(array(child, &column)?);
            }
            Arc::new(StructArray::try_new(
                fields.clone(),
                children,
                nulls(values),
            )?)
        }
    })
}

/// A record's field by position: values follow the schema the layout was
/// made from (decoded with it, or resolved to it), so fields are in its
/// order; a record of another length is looked up by name.
fn field_value<'v>(
    record: &'v [(String, Value)],
    index: usize,
    name: &str,
    width: usize,
) -> Option<&'v Value> {
    let found = if record.len() == width {
        record.get(index).map(|(_, v)| v)
    } else {
        record.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    };
    found.and_then(present)
}

fn list(field: &FieldRef, item: &Col, values: &[Option<&Value>]) -> Result<ArrayRef> {
    let mut offsets = vec![0i32];
    let mut items: Vec<Option<&Value>> = Vec::new();
    for value in values {
        if let Some(Value::Array(elements)) = value {
            items.extend(elements.iter().map(present));
        }
        offsets.push(i32::try_from(items.len()).map_err(|_| anyhow!("list too long"))?);
    }
    let child = array(item, &items)?;
    Ok(Arc::new(ListArray::try_new(
        field.clone(),
        OffsetBuffer::new(offsets.into()),
        child,
        nulls(values),
    )?))
}

fn primitive_vec<T>(
    values: &[Option<&Value>],
    read: impl Fn(&Value) -> Option<T>,
) -> Result<Vec<Option<T>>> {
    values
        .iter()
        .map(|v| match v {
            None => Ok(None),
            Some(value) => read(value).map(Some).ok_or_else(|| {
                anyhow!(
                    "value {:.80} does not fit a timestamp column",
                    format!("{value:?}")
                )
            }),
        })
        .collect()
}
