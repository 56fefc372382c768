// JSON that is already serialized, produced in pieces: a large reply (an inbox page of up to 4 MiB) is written
// to the socket piece by piece as the socket drains, never joined into one string or parsed and escaped again.

export class JsonStream {
  /** `chunks` is read lazily, one piece per socket write; it may end early (see the producer). */
  constructor(readonly chunks: () => Iterator<string> | AsyncIterator<string>) {}
}
