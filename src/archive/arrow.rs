//! Arrow columns for Parquet archives. The Arrow schema is derived from the
//! Avro schema, never inferred from values: a long stays int64, a field is
//! nullable exactly when its Avro type is a union with null, records become
//! structs, arrays lists, bytes binary, enums strings, timestamps timestamps.
//! Types an alert archive does not need (maps, unions of several non-null
//! types, decimals) are refused by name, before anything is written.

use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use apache_avro::schema::{Name, RecordSchema, Schema};
use arrow_array::{
    ArrayRef, Int32Array, Int64Array, RecordBatch, StructArray, TimestampMillisecondArray,
};
use arrow_schema::{DataType, Field, FieldRef, Fields, SchemaRef, TimeUnit};

use super::shred::{self, Column, Read};
use super::Meta;
use crate::avro::json::is_cutout_field;
use crate::avro::plan::{alert_input, Budget, LEFT_OVER};

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
    /// How an alert's bytes are read into those columns.
    read: Read,
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
        let mut reads = Vec::new();
        for (i, field) in record.fields.iter().enumerate() {
            let (col, nullable, read) = compiler.column(&field.schema, &field.name)?;
            let keep = stamps || !is_cutout_field(&field.name);
            reads.push((read, keep));
            if keep {
                fields.push(Field::new(&field.name, col.data_type(), nullable));
                columns.push((i, col));
            }
        }
        fields.push(Field::new(
            "_kafka",
            DataType::Struct(kafka_fields()),
            false,
        ));
        Ok(Self {
            schema: Arc::new(arrow_schema::Schema::new(fields)),
            columns,
            read: Read::Record(reads),
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

    /// An empty set of rows to append alerts to.
    pub fn rows(&self) -> Result<Rows> {
        let columns = self
            .columns
            .iter()
            .map(|(_, col)| Column::new(&col.data_type()))
            .collect::<Result<_>>()?;
        Ok(Rows {
            columns,
            kafka: Vec::new(),
        })
    }

    /// Appends a message's alerts: bare Avro of the layout's schema, each
    /// checked as it is read, within `budget` as the gate would. All of
    /// them or, on an error, none.
    pub fn append(
        &self,
        rows: &mut Rows,
        alerts: &[impl AsRef<[u8]>],
        meta: &Meta,
        budget: Budget,
    ) -> Result<()> {
        let before = rows.kafka.len();
        for alert in alerts {
            if let Err(e) = self.append_one(rows, alert.as_ref(), budget) {
                rows.columns.iter_mut().for_each(|c| c.truncate(before));
                rows.kafka.truncate(before);
                return Err(e);
            }
            rows.kafka
                .push((meta.partition, meta.offset, meta.timestamp));
        }
        Ok(())
    }

    fn append_one(&self, rows: &mut Rows, alert: &[u8], budget: Budget) -> Result<()> {
        let Read::Record(fields) = &self.read else {
            bail!("a Parquet archive needs alerts that are Avro records");
        };
        let mut input = alert_input(alert, budget)?;
        let mut kept = rows.columns.iter_mut();
        for (field, keep) in fields {
            shred::read(field, &mut input, if *keep { kept.next() } else { None })?;
        }
        Ok(input.at_end(LEFT_OVER)?)
    }

    /// Whether a file's Arrow schema is this layout's: the same columns,
    /// types and nullability (what a Parquet file record wrote for alerts of
    /// this schema reads back as).
    pub fn matches(&self, schema: &arrow_schema::Schema) -> bool {
        let mine = self.schema.fields();
        let theirs = schema.fields();
        mine.len() == theirs.len()
            && mine.iter().zip(theirs.iter()).all(|(a, b)| {
                a.name() == b.name()
                    && a.is_nullable() == b.is_nullable()
                    && a.data_type().equals_datatype(b.data_type())
            })
    }

    /// Row `row` of a batch of this layout (checked by [`Layout::matches`])
    /// as bare Avro of its schema, appended to `out`; and where the alert
    /// came from: (partition, offset, broker timestamp).
    pub fn encode_row(
        &self,
        batch: &RecordBatch,
        row: usize,
        out: &mut Vec<u8>,
    ) -> Result<(i32, i64, Option<i64>)> {
        let Read::Record(fields) = &self.read else {
            bail!("a Parquet archive needs alerts that are Avro records");
        };
        let mut kept = batch.columns().iter();
        for (field, keep) in fields {
            if *keep {
                let column = kept.next().ok_or_else(|| anyhow!("a column is missing"))?;
                super::unshred::write(field, column.as_ref(), row, out)?;
            } else {
                super::unshred::write_left_out(field, out)?;
            }
        }
        use arrow_array::cast::AsArray;
        let kafka = kept
            .next()
            .and_then(|c| c.as_struct_opt())
            .ok_or_else(|| anyhow!("no _kafka column"))?;
        let partition = kafka
            .column(0)
            .as_primitive_opt::<arrow_array::types::Int32Type>()
            .ok_or_else(|| anyhow!("_kafka.partition is not int32"))?
            .value(row);
        let offset = kafka
            .column(1)
            .as_primitive_opt::<arrow_array::types::Int64Type>()
            .ok_or_else(|| anyhow!("_kafka.offset is not int64"))?
            .value(row);
        let stamps = kafka
            .column(2)
            .as_primitive_opt::<arrow_array::types::TimestampMillisecondType>()
            .ok_or_else(|| anyhow!("_kafka.timestamp is not a timestamp"))?;
        let timestamp = (!arrow_array::Array::is_null(stamps, row)).then(|| stamps.value(row));
        Ok((partition, offset, timestamp))
    }

    /// The rows so far as a batch; `rows` is left empty.
    pub fn batch(&self, rows: &mut Rows) -> Result<RecordBatch> {
        let mut arrays = rows
            .columns
            .iter_mut()
            .map(Column::finish)
            .collect::<Result<Vec<_>>>()?;
        arrays.push(kafka_column(&std::mem::take(&mut rows.kafka)));
        Ok(RecordBatch::try_new(self.schema.clone(), arrays)?)
    }
}

/// Alerts shredded into columns, waiting to become a row group.
#[derive(Debug)]
pub struct Rows {
    columns: Vec<Column>,
    kafka: Vec<(i32, i64, Option<i64>)>,
}

impl Rows {
    pub fn len(&self) -> usize {
        self.kafka.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kafka.is_empty()
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

fn kafka_column(rows: &[(i32, i64, Option<i64>)]) -> ArrayRef {
    let partition = Int32Array::from_iter_values(rows.iter().map(|r| r.0));
    let offset = Int64Array::from_iter_values(rows.iter().map(|r| r.1));
    let timestamp = TimestampMillisecondArray::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())
        .with_timezone("UTC");
    Arc::new(StructArray::new(
        kafka_fields(),
        vec![Arc::new(partition), Arc::new(offset), Arc::new(timestamp)],
        None,
    ))
}

struct Compiler<'s> {
    names: &'s std::collections::HashMap<Name, &'s Schema>,
}

impl Compiler<'_> {
    /// A column, whether it is nullable, and how its values are read;
    /// `path` names it in errors.
    fn column(&mut self, schema: &Schema, path: &str) -> Result<(Col, bool, Read)> {
        let (col, read) = match schema {
            Schema::Null => return Ok((Col::Null, true, Read::Null)),
            Schema::Union(union) => return self.union(union.variants(), path),
            Schema::Boolean => (Col::Bool, Read::Bool),
            Schema::Int => (Col::I32, Read::Int),
            Schema::Long => (Col::I64, Read::Long),
            Schema::Float => (Col::F32, Read::Float),
            Schema::Double => (Col::F64, Read::Double),
            Schema::Bytes => (Col::Bin, Read::Bytes),
            Schema::String | Schema::Uuid => (Col::Str, Read::Str),
            Schema::Enum(e) => (Col::Str, Read::Enum(e.symbols.clone().into())),
            Schema::Fixed(f) => (Col::Fixed(i32::try_from(f.size)?), Read::Fixed(f.size)),
            Schema::Date => (Col::Date, Read::Int),
            Schema::TimestampMillis => (Col::TsMs, Read::Long),
            Schema::TimestampMicros => (Col::TsUs, Read::Long),
            Schema::TimeMillis => (Col::TimeMs, Read::Int),
            Schema::TimeMicros => (Col::TimeUs, Read::Long),
            Schema::Array(array) => {
                let (item, nullable, read) = self.column(&array.items, &format!("{path}[]"))?;
                let field = Arc::new(Field::new("item", item.data_type(), nullable));
                (Col::List(field, Box::new(item)), Read::array_of(read))
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
        Ok((col, false, read))
    }

    /// A union of null and at most one other type (nullable if null is a branch).
    fn union(&mut self, variants: &[Schema], path: &str) -> Result<(Col, bool, Read)> {
        let null = variants.iter().position(|s| *s == Schema::Null);
        let others: Vec<(usize, &Schema)> = variants
            .iter()
            .enumerate()
            .filter(|(_, s)| **s != Schema::Null)
            .collect();
        let index = |i: Option<usize>| i.map_or(-1, |i| i as i64);
        match others.as_slice() {
            // Its values still carry the branch index.
            [] => Ok((
                Col::Null,
                true,
                Read::Optional {
                    null: index(null),
                    value: -1,
                    inner: Box::new(Read::Null),
                },
            )),
            [(value, one)] => {
                let (col, _, inner) = self.column(one, path)?;
                let read = Read::Optional {
                    null: index(null),
                    value: *value as i64,
                    inner: Box::new(inner),
                };
                Ok((col, null.is_some(), read))
            }
            _ => Err(anyhow!(
                "{path}: a union of several non-null types has no Parquet column type; use --format avro"
            )),
        }
    }

    fn record(&mut self, record: &RecordSchema, path: &str) -> Result<(Col, Read)> {
        let mut fields = Vec::new();
        let mut cols = Vec::new();
        let mut reads = Vec::new();
        for field in &record.fields {
            let (col, nullable, read) =
                self.column(&field.schema, &format!("{path}.{}", field.name))?;
            fields.push(Field::new(&field.name, col.data_type(), nullable));
            cols.push(col);
            reads.push((read, true));
        }
        Ok((Col::Struct(Fields::from(fields), cols), Read::Record(reads)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, StringArray};

    fn meta(offset: i64) -> Meta {
        Meta {
            partition: 0,
            offset,
            timestamp: Some(1),
            key: None,
            headers: vec![],
        }
    }

    /// The built-in schema and the sample alerts as bare Avro of it.
    fn sample_datums() -> (Schema, Vec<Vec<u8>>) {
        let schema = crate::avro::schema::built_in();
        let samples = crate::alerts::source::load(&[std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/sample-alerts"
        ))])
        .unwrap();
        let datums = samples
            .iter()
            .map(|a| apache_avro::to_avro_datum(&schema, a.value.clone()).unwrap())
            .collect();
        (schema, datums)
    }

    const BUDGET: Budget = Budget {
        alert_bytes: crate::avro::gate::DEFAULT_MAX_ALERT_BYTES,
    };

    /// A message whose second alert holds a string that is not UTF-8 adds
    /// nothing: the first alert's columns are rolled back with it.
    #[test]
    fn a_message_lands_whole_or_not_at_all() {
        let schema = Schema::parse_str(
            r#"{"type":"record","name":"a","fields":[
                {"name":"id","type":"long"},
                {"name":"tags","type":{"type":"array","items":"string"}},
                {"name":"note","type":["null","string"],"default":null}]}"#,
        )
        .unwrap();
        let layout = Layout::new(&schema, true).unwrap();
        let mut rows = layout.rows().unwrap();
        // id 1, tags ["x"], note "ok"
        let good = vec![2, 2, 2, b'x', 0, 2, 4, b'o', b'k'];
        // id 2, tags ["y"], note: bytes 0xff 0xfe
        let bad = vec![4, 2, 2, b'y', 0, 2, 4, 0xff, 0xfe];
        layout
            .append(&mut rows, std::slice::from_ref(&good), &meta(0), BUDGET)
            .unwrap();
        let error = layout
            .append(&mut rows, &[good.clone(), bad], &meta(1), BUDGET)
            .unwrap_err();
        assert!(error.to_string().contains("UTF-8"), "{error}");
        assert_eq!(rows.len(), 1);
        layout.append(&mut rows, &[good], &meta(2), BUDGET).unwrap();
        let batch = layout.batch(&mut rows).unwrap();
        assert_eq!(batch.num_rows(), 2);
        let notes = batch
            .column(2)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!((notes.value(0), notes.value(1)), ("ok", "ok"));
        assert!(rows.is_empty());
        // The emptied rows take the next row group.
        let batch = layout.batch(&mut rows).unwrap();
        assert_eq!(batch.num_rows(), 0);
    }

    /// What the gate's walk refuses, the shredder refuses as it reads,
    /// rolling the message back: counts the bytes cannot hold, empty items
    /// past the alert's budget, bytes left over, an alert over the budget,
    /// a union branch the union lacks (-1 included), a boolean byte past 1,
    /// an int out of range, an enum index past its symbols; each in a
    /// field kept and in one left out of the layout (a cutout).
    #[test]
    fn hostile_alerts_are_refused_as_the_gate_refuses_them() {
        let schema = Schema::parse_str(
            r#"{"type":"record","name":"a","fields":[
                {"name":"id","type":"long"},
                {"name":"points","type":{"type":"array","items":
                    {"type":"record","name":"p","fields":[{"name":"x","type":"double"}]}}},
                {"name":"gaps","type":{"type":"array","items":"null"}},
                {"name":"none","type":["null"]},
                {"name":"only","type":["string"]},
                {"name":"flag","type":"boolean"},
                {"name":"small","type":"int"},
                {"name":"kind","type":{"type":"enum","name":"k","symbols":["a","b"]}},
                {"name":"cutoutScience","type":["null",{"type":"record","name":"c",
                    "fields":[{"name":"fileName","type":"string"},
                              {"name":"flag","type":"boolean"},
                              {"name":"kind","type":"k"}]}]}]}"#,
        )
        .unwrap();
        let plan = crate::avro::plan::Plan::shape(&schema).unwrap();
        let long = |v: i64| {
            let mut out = Vec::new();
            crate::avro::varint::write_long(&mut out, v);
            out
        };
        // The fields after `gaps`, each as given; then the cutout.
        let alert = |tail: &[&[u8]], cutout: &[&[u8]]| -> Vec<u8> {
            let head = [
                long(1),
                long(1),
                1f64.to_le_bytes().to_vec(),
                long(0),
                vec![4, 0],
            ];
            let cutout = [&[2u8][..], &[2, b'x'], cutout[0], cutout[1]].concat();
            [head.concat(), tail.concat(), cutout].concat()
        };
        // none: branch 0; only: branch 0, "y"; flag 1; small 7; kind b.
        let fine: [&[u8]; 5] = [&[0], &[0, 2, b'y'], &[1], &[14], &[2]];
        let with = |i: usize, bytes: &'static [u8]| {
            let mut tail = fine;
            tail[i] = bytes;
            alert(&tail, &[&[1], &[2]])
        };
        let good = alert(&fine, &[&[1], &[2]]);
        let claims_points = [long(1), long(1 << 40)].concat();
        let claims_nulls = [long(1), long(0), long(1 << 40)].concat();
        let left_over = [good.clone(), vec![0]].concat();
        let huge_int: &'static [u8] = Box::leak(long(1 << 40).into_boxed_slice());
        let small = Budget { alert_bytes: 4 };
        let cases: Vec<(Vec<u8>, Budget, &str)> = vec![
            (good.clone(), BUDGET, ""),
            (
                claims_points,
                BUDGET,
                "claims more items than the payload can hold",
            ),
            (
                claims_nulls,
                BUDGET,
                "empty items exceeds --max-alert-bytes",
            ),
            (left_over, BUDGET, "bytes left over"),
            (good, small, "larger than --max-alert-bytes"),
            (with(0, &[1]), BUDGET, "out of range"),
            (with(1, &[1, 2, b'y']), BUDGET, "out of range"),
            (with(1, &[2, 2, b'y']), BUDGET, "out of range"),
            (with(2, &[2]), BUDGET, "boolean byte is neither 0 nor 1"),
            (with(3, huge_int), BUDGET, "int out of range"),
            (with(4, &[4]), BUDGET, "enum index out of range"),
            (
                alert(&fine, &[&[2], &[2]]),
                BUDGET,
                "boolean byte is neither 0 nor 1",
            ),
            (
                alert(&fine, &[&[1], &[4]]),
                BUDGET,
                "enum index out of range",
            ),
        ];
        for stamps in [true, false] {
            let layout = Layout::new(&schema, stamps).unwrap();
            for (bytes, budget, refusal) in &cases {
                let mut rows = layout.rows().unwrap();
                let shredded = layout.append(&mut rows, &[bytes], &meta(0), *budget);
                let gate = plan.check(bytes, *budget);
                if refusal.is_empty() {
                    shredded.unwrap();
                    gate.unwrap();
                    assert_eq!(rows.len(), 1);
                    continue;
                }
                let said = shredded.unwrap_err().to_string();
                assert!(said.contains(refusal), "stamps {stamps}: {said}");
                let gate = gate.unwrap_err().to_string();
                assert!(gate.contains(refusal), "{gate}");
                assert_eq!(rows.len(), 0, "rolled back");
                assert!(rows.columns.iter().all(|c| c.rows() == 0));
            }
        }
    }

    /// Bare alerts reach the shredder unwalked by the gate, so it must
    /// refuse all the gate refuses: for real alerts with bytes changed,
    /// cut or added, shredded with and without their cutouts, whatever the
    /// shredder takes the gate takes too.
    #[test]
    fn the_shredder_takes_nothing_the_gate_refuses() {
        use proptest::prelude::*;
        let (schema, datums) = sample_datums();
        // With and without the cutouts: a field left out is checked too.
        let layouts = [true, false].map(|stamps| Layout::new(&schema, stamps).unwrap());
        let plan = crate::avro::plan::Plan::shape(&schema).unwrap();
        let config = ProptestConfig {
            cases: 2000,
            failure_persistence: None,
            ..ProptestConfig::default()
        };
        let edits = (
            0..datums.len(),
            any::<prop::sample::Index>(),
            any::<u8>(),
            0..3u8,
            any::<bool>(),
        );
        proptest::test_runner::TestRunner::new(config)
            .run(&edits, |(which, at, byte, how, stamps)| {
                let layout = &layouts[usize::from(!stamps)];
                let mut bytes = datums[which].clone();
                let at = at.index(bytes.len());
                match how {
                    0 => bytes[at] = byte,
                    1 => bytes.truncate(at),
                    _ => bytes.insert(at, byte),
                }
                let mut rows = layout.rows().unwrap();
                if layout
                    .append(&mut rows, &[&bytes], &meta(0), BUDGET)
                    .is_ok()
                {
                    prop_assert!(plan.check(&bytes, BUDGET).is_ok(), "edit {how} at {at}");
                } else {
                    prop_assert!(rows.columns.iter().all(|c| c.rows() == 0));
                }
                Ok(())
            })
            .unwrap();
    }

    /// Alerts shredded into columns and written back by `encode_row` are
    /// the same bytes (the sample alerts: records, arrays, unions, cutouts);
    /// without stamps, the cutouts come back null and the rest the same.
    #[test]
    fn rows_encode_back_to_the_same_avro() {
        let (schema, datums) = sample_datums();
        for stamps in [true, false] {
            let layout = Layout::new(&schema, stamps).unwrap();
            let mut rows = layout.rows().unwrap();
            for (i, datum) in datums.iter().enumerate() {
                layout
                    .append(
                        &mut rows,
                        std::slice::from_ref(datum),
                        &meta(i as i64),
                        BUDGET,
                    )
                    .unwrap();
            }
            let batch = layout.batch(&mut rows).unwrap();
            assert!(layout.matches(&batch.schema()));
            for (row, datum) in datums.iter().enumerate() {
                let mut out = Vec::new();
                let place = layout.encode_row(&batch, row, &mut out).unwrap();
                assert_eq!(place, (0, row as i64, Some(1)));
                if stamps {
                    assert_eq!(&out, datum, "row {row}");
                } else {
                    let value =
                        apache_avro::from_avro_datum(&schema, &mut out.as_slice(), None).unwrap();
                    let apache_avro::types::Value::Record(fields) = value else {
                        panic!("not a record")
                    };
                    let cutout = fields.iter().find(|(k, _)| k == "cutoutScience").unwrap();
                    assert!(matches!(
                        &cutout.1,
                        apache_avro::types::Value::Union(_, v) if **v == apache_avro::types::Value::Null
                    ));
                }
            }
        }
        let other = Layout::new(
            &Schema::parse_str(
                r#"{"type":"record","name":"a","fields":[{"name":"id","type":"long"}]}"#,
            )
            .unwrap(),
            true,
        )
        .unwrap();
        assert!(!other.matches(&Layout::new(&schema, true).unwrap().schema));
    }
}
