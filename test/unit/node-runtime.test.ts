import t from 'tap';

/**
 * .ci/run runs the suite a second time on Node 24 by putting that binary first
 * on PATH, and says so in EXPECTED_NODE_MAJOR: if the PATH did not reach tap's
 * workers, this fails instead of the run passing silently on the machine's Node.
 */
const expected = process.env.EXPECTED_NODE_MAJOR;

t.test('the tests run on the Node major .ci/run asked for', { skip: expected ? false : 'EXPECTED_NODE_MAJOR is not set' }, async (t) => {
  t.comment(`Node ${process.version} at ${process.execPath}`);
  t.equal(process.versions.node.split('.')[0], expected);
});
