//! Access events as Parquet: one row per decision, lists for fields, policies and the
//! customers shown, timestamps in milliseconds UTC, Snappy-compressed row groups.

use std::io::Write;
use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, ListBuilder, StringBuilder, TimestampMillisecondBuilder, UInt64Builder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::AccessEvent;

/// Rows buffered per row group.
pub const ROWS_PER_GROUP: usize = 131_072;

#[derive(Debug, thiserror::Error)]
#[error("cannot write Parquet: {0}")]
pub struct ExportError(String);

/// A Parquet file being written.
pub struct ParquetExport<W: Write + Send> {
    writer: ArrowWriter<W>,
    schema: SchemaRef,
    pending: Vec<AccessEvent>,
    rows: u64,
}

impl<W: Write + Send> std::fmt::Debug for ParquetExport<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ParquetExport({} rows)", self.rows)
    }
}

fn list_of_strings(name: &str) -> Field {
    Field::new(name, DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))), false)
}

/// The file's columns.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("ledger_index", DataType::UInt64, false),
        Field::new("time", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
        Field::new("request", DataType::Utf8, false),
        Field::new("agent", DataType::Utf8, false),
        Field::new("action", DataType::Utf8, false),
        Field::new("customer", DataType::Utf8, true),
        list_of_strings("shown"),
        Field::new("ticket", DataType::Utf8, true),
        list_of_strings("fields"),
        Field::new("why", DataType::Utf8, true),
        Field::new("allowed", DataType::Boolean, false),
        list_of_strings("policies"),
    ]))
}

impl<W: Write + Send> ParquetExport<W> {
    pub fn new(out: W) -> Result<ParquetExport<W>, ExportError> {
        let schema = schema();
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROWS_PER_GROUP))
            .build();
        let writer = ArrowWriter::try_new(out, Arc::clone(&schema), Some(properties))
            .map_err(|error| ExportError(error.to_string()))?;
        Ok(ParquetExport { writer, schema, pending: Vec::with_capacity(ROWS_PER_GROUP), rows: 0 })
    }

    pub fn push(&mut self, event: AccessEvent) -> Result<(), ExportError> {
        self.pending.push(event);
        if self.pending.len() >= ROWS_PER_GROUP {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes what is buffered and the file's footer; returns the rows written.
    pub fn finish(mut self) -> Result<u64, ExportError> {
        self.flush()?;
        self.writer.close().map_err(|error| ExportError(error.to_string()))?;
        Ok(self.rows)
    }

    fn flush(&mut self) -> Result<(), ExportError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let rows = self.pending.len();
        let mut index = UInt64Builder::with_capacity(rows);
        let mut time = TimestampMillisecondBuilder::with_capacity(rows).with_timezone("UTC");
        let mut request = StringBuilder::new();
        let mut agent = StringBuilder::new();
        let mut action = StringBuilder::new();
        let mut customer = StringBuilder::new();
        let mut shown = ListBuilder::new(StringBuilder::new());
        let mut ticket = StringBuilder::new();
        let mut fields = ListBuilder::new(StringBuilder::new());
        let mut why = StringBuilder::new();
        let mut allowed = BooleanBuilder::with_capacity(rows);
        let mut policies = ListBuilder::new(StringBuilder::new());
        for event in self.pending.drain(..) {
            index.append_value(event.ledger_index);
            time.append_value(event.time_ms);
            request.append_value(&event.request);
            agent.append_value(&event.agent);
            action.append_value(&event.action);
            customer.append_option(event.customer.as_deref());
            for (builder, items) in
                [(&mut shown, &event.shown), (&mut fields, &event.fields), (&mut policies, &event.policies)]
            {
                for item in items {
                    builder.values().append_value(item);
                }
                builder.append(true);
            }
            ticket.append_option(event.ticket.as_deref());
            why.append_option(event.why.as_deref());
            allowed.append_value(event.allowed);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(index.finish()),
            Arc::new(time.finish()),
            Arc::new(request.finish()),
            Arc::new(agent.finish()),
            Arc::new(action.finish()),
            Arc::new(customer.finish()),
            Arc::new(shown.finish()),
            Arc::new(ticket.finish()),
            Arc::new(fields.finish()),
            Arc::new(why.finish()),
            Arc::new(allowed.finish()),
            Arc::new(policies.finish()),
        ];
        let batch =
            RecordBatch::try_new(Arc::clone(&self.schema), columns).map_err(|error| ExportError(error.to_string()))?;
        self.writer.write(&batch).map_err(|error| ExportError(error.to_string()))?;
        self.rows += rows as u64;
        Ok(())
    }
}
