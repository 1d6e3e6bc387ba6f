/**
 * HTTP-dates (RFC 9110 §5.6.7): IMF-fixdate, which every current client sends, and the two
 * obsolete forms a recipient must still accept. Nothing else is a date here.
 */

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const DAY = "(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)";
const MONTH = `(${MONTHS.join("|")})`;
const TIME = "(\\d{2}):(\\d{2}):(\\d{2})";
/** `Sun, 06 Nov 1994 08:49:37 GMT`, what every current client sends. */
const IMF_FIXDATE = new RegExp(`^${DAY}, (\\d{2}) ${MONTH} (\\d{4}) ${TIME} GMT$`);
/** `Sunday, 06-Nov-94 08:49:37 GMT` (obsolete, still to be accepted). */
const RFC850_DATE = new RegExp(`^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), (\\d{2})-${MONTH}-(\\d{2}) ${TIME} GMT$`);
/** `Sun Nov  6 08:49:37 1994` (obsolete, still to be accepted). */
const ASCTIME_DATE = new RegExp(`^${DAY} ${MONTH} ([ \\d]\\d) ${TIME} (\\d{4})$`);

/** An rfc850-date year more than 50 years ahead is the latest past year with those digits (RFC 9110 §5.6.7). */
function fullYear(twoDigits: number): number {
  const now = new Date().getUTCFullYear();
  let year = now - (now % 100) + twoDigits;
  if (year > now + 50) year -= 100;
  return year;
}

function utcSeconds(year: number, month: string, day: number, hh: string, mm: string, ss: string): number | undefined {
  const [h, m, s] = [Number(hh), Number(mm), Number(ss)];
  if (h > 23 || m > 59 || s > 60) return undefined;
  const monthIndex = MONTHS.indexOf(month);
  // setUTCFullYear, unlike Date.UTC, keeps years below 100 as they are; a leap second counts as :59.
  const date = new Date(0);
  date.setUTCFullYear(year, monthIndex, day);
  date.setUTCHours(h, m, Math.min(s, 59));
  // 31 Feb would roll over into March: such a date is not one.
  if (date.getUTCDate() !== day || date.getUTCMonth() !== monthIndex) return undefined;
  return date.getTime() / 1000;
}

/**
 * Seconds since the epoch of an HTTP-date (RFC 9110 §5.6.7), or undefined when the value is not
 * one, which makes the condition ignored. Date.parse would not do: it takes "0", "2099" or
 * "garbage 2020" for dates, and reads zone-less ones in the machine's local time.
 */
export function httpDateSeconds(header: string): number | undefined {
  const value = header.trim();
  let match = IMF_FIXDATE.exec(value);
  if (match) return utcSeconds(Number(match[3]), match[2]!, Number(match[1]), match[4]!, match[5]!, match[6]!);
  match = RFC850_DATE.exec(value);
  if (match) return utcSeconds(fullYear(Number(match[3])), match[2]!, Number(match[1]), match[4]!, match[5]!, match[6]!);
  match = ASCTIME_DATE.exec(value);
  if (match) return utcSeconds(Number(match[6]), match[1]!, Number(match[2]!.trim()), match[3]!, match[4]!, match[5]!);
  return undefined;
}
