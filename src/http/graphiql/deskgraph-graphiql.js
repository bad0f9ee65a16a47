// Starts GraphiQL on the page deskgraph serves at `GET /graphql` (src/http/graphiql.rs). The page has
// no inline script (its CSP allows scripts from this origin only), so its settings come as JSON in
// <script type="application/json" id="graphiql-settings">:
//
//   endpoint  the GraphQL endpoint's path; subscriptions go to the same path over a websocket
//             (graphql-transport-ws, through the graphql-ws client bundled in graphiql.min.js)
//   query     what a new tab starts with
//   users     only in `deskgraph demo`: seeded users, each { label, headers }. The page opens signed
//             in as the first (its headers in the Headers tab) and offers a picker for the others.
//
// The Headers tab's JSON is sent as HTTP headers, and as the websocket's connection_init payload.
(function () {
  'use strict';

  var settings = JSON.parse(document.getElementById('graphiql-settings').textContent);
  var users = settings.users || [];
  var h = React.createElement;

  function absolute(path, websocket) {
    var url = new URL(path, window.location.href);
    if (websocket) {
      url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    }
    return url.toString();
  }

  var graphiqlFetcher = GraphiQL.createFetcher({
    url: absolute(settings.endpoint, false),
    subscriptionUrl: absolute(settings.endpoint, true),
  });
  // The user the page is signed in as (an index into `users`).
  var selected = 0;

  // Introspection needs credentials too, and GraphiQL 4.1.2 sends its first one before its Headers
  // tab exists (graphql/graphiql#3969), without headers: the docs would stay empty. An introspection
  // sent without headers goes as the user the page is signed in as.
  function fetcher(params, options) {
    if (
      users.length > 0 &&
      params.operationName === 'IntrospectionQuery' &&
      !(options && options.headers)
    ) {
      options = Object.assign({}, options, { headers: users[selected].headers });
    }
    return graphiqlFetcher(params, options);
  }

  function headersOf(index) {
    return JSON.stringify(users[index].headers, null, 2);
  }

  // Who the page is signed in as: picking another user replaces the Headers tab's contents.
  function UserPicker(props) {
    return h(
      'label',
      { className: 'deskgraph-user-picker' },
      h('span', null, 'Signed in as'),
      h(
        'select',
        {
          value: String(props.selected),
          onChange: function (event) {
            props.onSelect(Number(event.target.value));
          },
        },
        users.map(function (user, index) {
          return h('option', { key: index, value: String(index) }, user.label);
        }),
      ),
    );
  }

  function App() {
    var selection = React.useState(0);
    var props = {
      fetcher: fetcher,
      defaultQuery: settings.query,
      defaultEditorToolsVisibility: 'headers',
      // Headers carry tokens: never written to the browser's storage.
      shouldPersistHeaders: false,
    };
    if (users.length === 0) {
      return h(GraphiQL, props);
    }
    selected = selection[0];
    // `headers` replaces the Headers tab's contents whenever it changes; new tabs start with the
    // same user.
    props.headers = headersOf(selected);
    props.defaultHeaders = props.headers;
    return h(
      GraphiQL,
      props,
      h(GraphiQL.Logo, null, h(UserPicker, { selected: selection[0], onSelect: selection[1] })),
    );
  }

  ReactDOM.createRoot(document.getElementById('graphiql')).render(h(App));
})();
