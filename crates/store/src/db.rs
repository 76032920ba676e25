//! One SQL interface over the store's two backends: embedded SQLite (the default) and
//! PostgreSQL (several gateways sharing one store). The store's queries are written once, in
//! the SQL both accept, with SQLite's `?N` parameters (PostgreSQL's `$N` are substituted at
//! prepare time); the few statements that must differ pick by [`Dialect`].
//!
//! Parameters and columns are limited to the types both backends store the same way
//! ([`Value`], [`Column`]): 64-bit integers, text and bytes. A `bool` or a `u32` would bind
//! in SQLite and be refused (or mean something else) in PostgreSQL, so they do not compile.

use std::collections::HashMap;
use std::time::Duration;

/// A failed statement, in words: the backend's message (for PostgreSQL its SQLSTATE code and
/// message), and whether the database could not be reached at all.
#[derive(Debug, Clone)]
pub(crate) struct DbError {
    pub message: String,
    pub unreachable: bool,
}

impl From<rusqlite::Error> for DbError {
    fn from(error: rusqlite::Error) -> Self {
        DbError { message: error.to_string(), unreachable: false }
    }
}

impl From<postgres::Error> for DbError {
    fn from(error: postgres::Error) -> Self {
        match error.as_db_error() {
            Some(db) => DbError { message: format!("{} ({})", db.message(), db.code().code()), unreachable: false },
            // No answer from the server: a closed connection, a refused or timed-out connect,
            // a certificate refused (its reason is the error's source).
            None => {
                let mut message = error.to_string();
                let mut source = std::error::Error::source(&error);
                while let Some(cause) = source {
                    let cause_text = cause.to_string();
                    if !message.contains(&cause_text) {
                        message = format!("{message}: {cause_text}");
                    }
                    source = cause.source();
                }
                DbError { message, unreachable: true }
            }
        }
    }
}

/// Which SQL a statement is written in, where the two differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// `sqlite` on SQLite, `postgres` on PostgreSQL.
    pub fn pick<'a>(self, sqlite: &'a str, postgres: &'a str) -> &'a str {
        match self {
            Dialect::Sqlite => sqlite,
            Dialect::Postgres => postgres,
        }
    }
}

/// A statement parameter both backends bind the same way.
pub(crate) trait Value {
    fn sqlite(&self) -> &dyn rusqlite::ToSql;
    fn postgres(&self) -> &(dyn postgres::types::ToSql + Sync);
    /// The value's text, if it is text (see [`NUL_IN_POSTGRES`]).
    fn text(&self) -> Option<&str>;
}

macro_rules! value {
    ($($type:ty => $text:expr),*) => {$(
        impl Value for $type {
            fn sqlite(&self) -> &dyn rusqlite::ToSql {
                self
            }
            fn postgres(&self) -> &(dyn postgres::types::ToSql + Sync) {
                self
            }
            fn text(&self) -> Option<&str> {
                let text: for<'a> fn(&'a $type) -> Option<&'a str> = $text;
                text(self)
            }
        }
    )*};
}

value!(
    i64 => |_| None,
    String => |text| Some(text),
    &str => |text| Some(text),
    Vec<u8> => |_| None,
    &[u8] => |_| None,
    Option<i64> => |_| None,
    Option<String> => |text| text.as_deref(),
    Option<&str> => |text| *text,
    Option<&String> => |text| text.map(String::as_str)
);

/// PostgreSQL's text holds no NUL character, which any request may name (an id, a reason):
/// in a text parameter the PostgreSQL backend writes U+FFFD, the replacement character, in
/// its place, in a value stored and in a value looked up alike, so a hostile id is recorded
/// and found again as on SQLite, which keeps it as given. No id the directory accepts holds
/// either character, so none can stand for a real one.
pub(crate) const NUL_IN_POSTGRES: char = '\u{FFFD}';

/// Each text parameter that holds a NUL, respelled for PostgreSQL (`None`: used as given).
fn postgres_texts(values: &[&dyn Value]) -> Vec<Option<String>> {
    values
        .iter()
        .map(|value| {
            value.text().filter(|text| text.contains('\0')).map(|text| text.replace('\0', &NUL_IN_POSTGRES.to_string()))
        })
        .collect()
}

impl<T: Value + ?Sized> Value for &T {
    fn sqlite(&self) -> &dyn rusqlite::ToSql {
        (**self).sqlite()
    }
    fn postgres(&self) -> &(dyn postgres::types::ToSql + Sync) {
        (**self).postgres()
    }
    fn text(&self) -> Option<&str> {
        (**self).text()
    }
}

/// The parameters of a statement: `values![a, b]` is `&[&a as &dyn Value, &b]`.
macro_rules! values {
    () => { &[] as &[&dyn $crate::db::Value] };
    ($($value:expr),+ $(,)?) => { &[$(&$value as &dyn $crate::db::Value),+] as &[&dyn $crate::db::Value] };
}
pub(crate) use values;

/// A column type both backends read back the same way.
pub(crate) trait Column: Sized {
    fn sqlite(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Self>;
    fn postgres(row: &postgres::Row, index: usize) -> Result<Self, postgres::Error>;
}

macro_rules! column {
    ($($type:ty),*) => {$(
        impl Column for $type {
            fn sqlite(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Self> {
                row.get(index)
            }
            fn postgres(row: &postgres::Row, index: usize) -> Result<Self, postgres::Error> {
                row.try_get(index)
            }
        }
    )*};
}

column!(i64, String, Vec<u8>, Option<i64>, Option<String>, Option<Vec<u8>>);

/// A result row of either backend.
pub(crate) enum Row<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Postgres(&'r postgres::Row),
}

impl Row<'_> {
    pub fn get<T: Column>(&self, index: usize) -> Result<T, DbError> {
        match self {
            Row::Sqlite(row) => Ok(T::sqlite(row, index)?),
            Row::Postgres(row) => Ok(T::postgres(row, index)?),
        }
    }

    /// A text column read in place (millions of rows: no copies).
    pub fn str(&self, index: usize) -> Result<&str, DbError> {
        match self {
            Row::Sqlite(row) => Ok(row.get_ref(index)?.as_str().map_err(rusqlite::Error::from)?),
            Row::Postgres(row) => Ok(row.try_get::<_, &str>(index)?),
        }
    }
}

/// What a PostgreSQL connection keeps beside the client: its prepared statements, by the
/// SQL they were written in.
#[derive(Default)]
pub(crate) struct Statements(HashMap<String, postgres::Statement>);

impl Statements {
    fn prepare(
        &mut self,
        sql: &str,
        prepare: impl FnOnce(&str) -> Result<postgres::Statement, postgres::Error>,
    ) -> Result<postgres::Statement, DbError> {
        if let Some(statement) = self.0.get(sql) {
            return Ok(statement.clone());
        }
        let statement = prepare(&postgres_parameters(sql))?;
        self.0.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }
}

/// `?1` → `$1`: SQLite's numbered parameters in PostgreSQL's spelling. The store's SQL has no
/// `?` inside string literals.
pub(crate) fn postgres_parameters(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

/// A connection to either backend.
pub(crate) enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres { client: PgClient, statements: Statements },
}

/// A PostgreSQL client, closed (when dropped) where it may block, as every call is.
pub(crate) struct PgClient(Option<Box<postgres::Client>>);

impl PgClient {
    fn get(&mut self) -> Result<&mut postgres::Client, DbError> {
        self.0.as_deref_mut().ok_or_else(|| DbError { message: "the connection is closed".into(), unreachable: true })
    }

    fn is_closed(&self) -> bool {
        self.0.as_ref().is_none_or(|client| client.is_closed())
    }
}

impl Drop for PgClient {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            blocking(move || drop(client));
        }
    }
}

/// A PostgreSQL transaction, rolled back (when dropped uncommitted) where it may block.
pub(crate) struct PgTransaction<'c>(Option<postgres::Transaction<'c>>);

impl<'c> PgTransaction<'c> {
    fn get(&mut self) -> Result<&mut postgres::Transaction<'c>, DbError> {
        self.0.as_mut().ok_or_else(|| DbError { message: "the transaction has ended".into(), unreachable: false })
    }

    fn commit(&mut self) -> Result<(), DbError> {
        match self.0.take() {
            Some(transaction) => Ok(blocking(move || transaction.commit())?),
            None => Err(DbError { message: "the transaction has ended".into(), unreachable: false }),
        }
    }
}

impl Drop for PgTransaction<'_> {
    fn drop(&mut self) {
        if let Some(transaction) = self.0.take() {
            blocking(move || drop(transaction));
        }
    }
}

/// A transaction on either backend; dropped without [`Tx::commit`], it rolls back.
pub(crate) enum Tx<'c> {
    Sqlite(rusqlite::Transaction<'c>),
    Postgres { transaction: PgTransaction<'c>, statements: &'c mut Statements },
}

/// Runs a PostgreSQL call where it may block. The client blocks on a runtime of its own,
/// which tokio forbids on its async workers (the gateway answers fast requests there, as
/// SQLite's point reads do): on a multi-threaded runtime the call runs in `block_in_place`,
/// on a current-thread runtime (tests) on a scoped thread of its own, elsewhere in place.
pub(crate) fn blocking<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    match tokio::runtime::Handle::try_current().map(|handle| handle.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        Ok(_) => std::thread::scope(|scope| match scope.spawn(work).join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }),
        Err(_) => work(),
    }
}

/// Whether rows can be handed on as they arrive: anywhere but on a current-thread runtime,
/// where the query runs on a thread of its own and its rows are gathered first.
fn streams() -> bool {
    !matches!(
        tokio::runtime::Handle::try_current().map(|handle| handle.runtime_flavor()),
        Ok(tokio::runtime::RuntimeFlavor::CurrentThread)
    )
}

/// [`blocking`] for a call that hands rows on as they arrive (only where [`streams`]).
fn stream<R>(work: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|handle| handle.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// How long a PostgreSQL connection may wait for the server before it is given up: a
/// gateway cut off from its database must say so (and fail closed) within seconds, not
/// after the kernel's TCP timeout of minutes.
pub(crate) const POSTGRES_TIMEOUT: Duration = Duration::from_secs(5);

impl Conn {
    pub(crate) fn postgres(server: &crate::postgres::Server) -> Result<Conn, DbError> {
        let client = blocking(|| server.connect())?;
        Ok(Conn::Postgres { client: PgClient(Some(Box::new(client))), statements: Statements::default() })
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Conn::Sqlite(_) => Dialect::Sqlite,
            Conn::Postgres { .. } => Dialect::Postgres,
        }
    }

    /// Whether a PostgreSQL connection has been lost (the server went away or was cut off):
    /// it must be opened again before use.
    pub fn is_lost(&self) -> bool {
        match self {
            Conn::Sqlite(_) => false,
            Conn::Postgres { client, .. } => client.is_closed(),
        }
    }

    pub fn transaction(&mut self) -> Result<Tx<'_>, DbError> {
        match self {
            Conn::Sqlite(connection) => Ok(Tx::Sqlite(connection.transaction()?)),
            Conn::Postgres { client, statements } => {
                let client = client.get()?;
                let transaction = blocking(|| client.transaction())?;
                Ok(Tx::Postgres { transaction: PgTransaction(Some(transaction)), statements })
            }
        }
    }
}

impl Tx<'_> {
    /// Runs a statement only PostgreSQL has (an array parameter, say), in its own spelling
    /// (`$N`, which the respelling of `?N` leaves as it is).
    pub fn execute_postgres(
        &mut self,
        sql: &str,
        values: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<u64, DbError> {
        match self {
            Tx::Sqlite(_) => {
                Err(DbError { message: "a PostgreSQL statement was run on SQLite".into(), unreachable: false })
            }
            Tx::Postgres { transaction, statements } => {
                let transaction = transaction.get()?;
                blocking(|| {
                    let statement = statements.prepare(sql, |sql| transaction.prepare(sql))?;
                    Ok(transaction.execute(&statement, values)?)
                })
            }
        }
    }

    pub fn commit(self) -> Result<(), DbError> {
        match self {
            Tx::Sqlite(transaction) => Ok(transaction.commit()?),
            Tx::Postgres { mut transaction, .. } => transaction.commit(),
        }
    }
}

/// Statements prepared once for a loop over many rows (a bulk import runs a handful of
/// statements per customer): looked up by position, not by their text each time.
pub(crate) enum Prepared<'t, 'c> {
    Sqlite(Vec<rusqlite::CachedStatement<'t>>),
    Postgres { transaction: &'t mut postgres::Transaction<'c>, statements: Vec<postgres::Statement> },
}

impl<'c> Tx<'c> {
    /// `sqls` prepared in this transaction; [`Prepared::execute`] and [`Prepared::query_row`]
    /// name one by its position in `sqls`.
    pub fn prepare<'t>(&'t mut self, sqls: &[&str]) -> Result<Prepared<'t, 'c>, DbError> {
        match self {
            Tx::Sqlite(transaction) => {
                Ok(Prepared::Sqlite(sqls.iter().map(|sql| transaction.prepare_cached(sql)).collect::<Result<_, _>>()?))
            }
            Tx::Postgres { transaction, statements } => {
                let transaction = transaction.get()?;
                let prepared = blocking(|| {
                    sqls.iter()
                        .map(|sql| statements.prepare(sql, |sql| transaction.prepare(sql)))
                        .collect::<Result<_, _>>()
                })?;
                Ok(Prepared::Postgres { transaction, statements: prepared })
            }
        }
    }
}

impl Prepared<'_, '_> {
    fn missing(which: usize) -> DbError {
        DbError { message: format!("no prepared statement {which}"), unreachable: false }
    }

    /// Runs statement `which`; the rows it changed.
    pub fn execute(&mut self, which: usize, values: &[&dyn Value]) -> Result<u64, DbError> {
        match self {
            Prepared::Sqlite(statements) => {
                let statement = statements.get_mut(which).ok_or_else(|| Self::missing(which))?;
                Ok(statement.execute(sqlite_values(values))? as u64)
            }
            Prepared::Postgres { transaction, statements } => {
                let statement = statements.get(which).ok_or_else(|| Self::missing(which))?;
                let texts = postgres_texts(values);
                let values = postgres_values(values, &texts);
                Ok(blocking(|| transaction.execute(statement, &values))?)
            }
        }
    }

    /// Statement `which`'s first row, read by `read`.
    pub fn query_row<T>(
        &mut self,
        which: usize,
        values: &[&dyn Value],
        read: impl FnOnce(&Row<'_>) -> Result<T, DbError>,
    ) -> Result<Option<T>, DbError> {
        match self {
            Prepared::Sqlite(statements) => {
                let statement = statements.get_mut(which).ok_or_else(|| Self::missing(which))?;
                let mut rows = statement.query(sqlite_values(values))?;
                match rows.next()? {
                    Some(row) => Ok(Some(read(&Row::Sqlite(row))?)),
                    None => Ok(None),
                }
            }
            Prepared::Postgres { transaction, statements } => {
                let statement = statements.get(which).ok_or_else(|| Self::missing(which))?;
                let texts = postgres_texts(values);
                let values = postgres_values(values, &texts);
                match blocking(|| transaction.query_opt(statement, &values))? {
                    Some(row) => Ok(Some(read(&Row::Postgres(&row))?)),
                    None => Ok(None),
                }
            }
        }
    }
}

/// Statements on a connection or in a transaction.
pub(crate) trait Sql {
    fn dialect(&self) -> Dialect;

    /// Runs one statement; the rows it changed.
    fn execute(&mut self, sql: &str, values: &[&dyn Value]) -> Result<u64, DbError>;

    /// Runs one query, calling `each` per row as it arrives.
    fn each_row(
        &mut self,
        sql: &str,
        values: &[&dyn Value],
        each: &mut dyn FnMut(&Row<'_>) -> Result<(), DbError>,
    ) -> Result<(), DbError>;

    /// Runs statements without parameters (schema changes).
    fn batch(&mut self, sql: &str) -> Result<(), DbError>;

    /// The first row's `read`, or `None` without rows.
    fn query_row<T>(
        &mut self,
        sql: &str,
        values: &[&dyn Value],
        read: impl FnOnce(&Row<'_>) -> Result<T, DbError>,
    ) -> Result<Option<T>, DbError>
    where
        Self: Sized,
    {
        let mut read = Some(read);
        let mut found = None;
        self.each_row(sql, values, &mut |row| {
            if let Some(read) = read.take() {
                found = Some(read(row)?);
            }
            Ok(())
        })?;
        Ok(found)
    }

    /// Every row's `read`, in order.
    fn query_map<T>(
        &mut self,
        sql: &str,
        values: &[&dyn Value],
        mut read: impl FnMut(&Row<'_>) -> Result<T, DbError>,
    ) -> Result<Vec<T>, DbError>
    where
        Self: Sized,
    {
        let mut found = Vec::new();
        self.each_row(sql, values, &mut |row| {
            found.push(read(row)?);
            Ok(())
        })?;
        Ok(found)
    }
}

fn sqlite_values<'v>(values: &'v [&'v dyn Value]) -> impl rusqlite::Params + 'v {
    rusqlite::params_from_iter(values.iter().map(|value| value.sqlite()))
}

fn sqlite_each(
    connection: &rusqlite::Connection,
    sql: &str,
    values: &[&dyn Value],
    each: &mut dyn FnMut(&Row<'_>) -> Result<(), DbError>,
) -> Result<(), DbError> {
    let mut statement = connection.prepare_cached(sql)?;
    let mut rows = statement.query(sqlite_values(values))?;
    while let Some(row) = rows.next()? {
        each(&Row::Sqlite(row))?;
    }
    Ok(())
}

/// The parameters as PostgreSQL takes them, a respelled text (from [`postgres_texts`]) in
/// place of the one given.
fn postgres_values<'v>(
    values: &'v [&'v dyn Value],
    texts: &'v [Option<String>],
) -> Vec<&'v (dyn postgres::types::ToSql + Sync)> {
    values
        .iter()
        .zip(texts)
        .map(|(value, text)| match text {
            Some(text) => text as &(dyn postgres::types::ToSql + Sync),
            None => value.postgres(),
        })
        .collect()
}

fn postgres_each(
    rows: Result<postgres::RowIter<'_>, postgres::Error>,
    each: &mut dyn FnMut(&Row<'_>) -> Result<(), DbError>,
) -> Result<(), DbError> {
    use postgres::fallible_iterator::FallibleIterator as _;
    let mut rows = rows?;
    while let Some(row) = rows.next()? {
        each(&Row::Postgres(&row))?;
    }
    Ok(())
}

/// One statement on a PostgreSQL client or transaction, prepared once per connection.
fn postgres_execute(
    client: &mut (impl postgres::GenericClient + Send),
    statements: &mut Statements,
    sql: &str,
    values: &[&dyn Value],
) -> Result<u64, DbError> {
    let texts = postgres_texts(values);
    let values = postgres_values(values, &texts);
    blocking(|| {
        let statement = statements.prepare(sql, |sql| client.prepare(sql))?;
        Ok(client.execute(&statement, &values)?)
    })
}

/// One query on a PostgreSQL client or transaction, its rows handed on as they arrive where
/// that can be done (see [`streams`]), else gathered first.
fn postgres_each_row(
    client: &mut (impl postgres::GenericClient + Send),
    statements: &mut Statements,
    sql: &str,
    values: &[&dyn Value],
    each: &mut dyn FnMut(&Row<'_>) -> Result<(), DbError>,
) -> Result<(), DbError> {
    let texts = postgres_texts(values);
    let values = postgres_values(values, &texts);
    if streams() {
        return stream(|| {
            let statement = statements.prepare(sql, |sql| client.prepare(sql))?;
            postgres_each(client.query_raw(&statement, values), each)
        });
    }
    let rows = blocking(|| {
        let statement = statements.prepare(sql, |sql| client.prepare(sql))?;
        Ok::<_, DbError>(client.query(&statement, &values)?)
    })?;
    rows.iter().try_for_each(|row| each(&Row::Postgres(row)))
}

impl Sql for Conn {
    fn dialect(&self) -> Dialect {
        Conn::dialect(self)
    }

    fn execute(&mut self, sql: &str, values: &[&dyn Value]) -> Result<u64, DbError> {
        match self {
            Conn::Sqlite(connection) => Ok(connection.prepare_cached(sql)?.execute(sqlite_values(values))? as u64),
            Conn::Postgres { client, statements } => postgres_execute(client.get()?, statements, sql, values),
        }
    }

    fn each_row(
        &mut self,
        sql: &str,
        values: &[&dyn Value],
        each: &mut dyn FnMut(&Row<'_>) -> Result<(), DbError>,
    ) -> Result<(), DbError> {
        match self {
            Conn::Sqlite(connection) => sqlite_each(connection, sql, values, each),
            Conn::Postgres { client, statements } => postgres_each_row(client.get()?, statements, sql, values, each),
        }
    }

    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        match self {
            Conn::Sqlite(connection) => Ok(connection.execute_batch(sql)?),
            Conn::Postgres { client, .. } => {
                let client = client.get()?;
                Ok(blocking(|| client.batch_execute(sql))?)
            }
        }
    }
}

impl Sql for Tx<'_> {
    fn dialect(&self) -> Dialect {
        match self {
            Tx::Sqlite(_) => Dialect::Sqlite,
            Tx::Postgres { .. } => Dialect::Postgres,
        }
    }

    fn execute(&mut self, sql: &str, values: &[&dyn Value]) -> Result<u64, DbError> {
        match self {
            Tx::Sqlite(transaction) => Ok(transaction.prepare_cached(sql)?.execute(sqlite_values(values))? as u64),
            Tx::Postgres { transaction, statements } => postgres_execute(transaction.get()?, statements, sql, values),
        }
    }

    fn each_row(
        &mut self,
        sql: &str,
        values: &[&dyn Value],
        each: &mut dyn FnMut(&Row<'_>) -> Result<(), DbError>,
    ) -> Result<(), DbError> {
        match self {
            Tx::Sqlite(transaction) => sqlite_each(transaction, sql, values, each),
            Tx::Postgres { transaction, statements } => {
                postgres_each_row(transaction.get()?, statements, sql, values, each)
            }
        }
    }

    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        match self {
            Tx::Sqlite(transaction) => Ok(transaction.execute_batch(sql)?),
            Tx::Postgres { transaction, .. } => {
                let transaction = transaction.get()?;
                Ok(blocking(|| transaction.batch_execute(sql))?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::postgres_parameters;

    #[test]
    fn numbered_parameters_are_respelled_and_nothing_else() {
        let cases = [
            ("SELECT a FROM t WHERE b = ?1 AND c = ?12", "SELECT a FROM t WHERE b = $1 AND c = $12"),
            ("SELECT ? FROM t", "SELECT ? FROM t"),
            ("SELECT 1", "SELECT 1"),
        ];
        for (sqlite, postgres) in cases {
            assert_eq!(postgres_parameters(sqlite), postgres, "{sqlite}");
        }
    }
}
